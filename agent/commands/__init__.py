"""Commands from upstream: validated, authorised, bounded, rate-limited, idempotent, audited.

Every write to a device, whoever asks (a command, the site controller), goes through one
:class:`WriteGate`; the app builds it and hands it to the router and the site controller::

    gate = WriteGate(devices, drivers, clock, timeout=..., audit=sink)
    router = CommandRouter(config.commands, devices=..., drivers=..., ids=..., site=site, gate=gate)
    outcome = await router.handle(device, payload)   # for each message on edge/{gw}/cmd/{device}
"""

from ..contract.lazy import lazy_exports

# each name imported on first use: validating a config imports the [commands] model (pydantic) and its
# modes only, not the router, the gate and the id store the running agent builds
_WHERE = {"auth": ("sign",), "gate": ("SITE", "AuditSink", "WriteGate", "Writer"), "idstore": ("IdStore",),
          "modes": ("AuthMode",), "parse": ("Code", "Refusal"), "router": ("CommandOutcome", "CommandRouter"),
          "config": ("CommandsConfig",)}
__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for module, names in _WHERE.items()
                                     for name in names})


__all__ = ["SITE", "AuditSink", "AuthMode", "Code", "CommandOutcome", "CommandRouter", "CommandsConfig", "IdStore",
           "Refusal", "WriteGate", "Writer", "sign"]
