"""Commands from upstream: validated, authorised, bounded, rate-limited, idempotent, audited.

Every write to a device, whoever asks (a command, the site controller), goes through one
:class:`WriteGate`; the app builds it and hands it to the router and the site controller::

    gate = WriteGate(devices, drivers, clock, timeout=..., audit=sink)
    router = CommandRouter(config.commands, devices=..., drivers=..., ids=..., site=site, gate=gate)
    outcome = await router.handle(device, payload)   # for each message on edge/{gw}/cmd/{device}
"""

from .auth import sign
from .gate import SITE, AuditSink, WriteGate, Writer
from .idstore import IdStore
from .modes import AuthMode
from .parse import Code, Refusal
from .router import CommandOutcome, CommandRouter


# the [commands] model (pydantic) is imported on first use: the running agent reads a plain config
def __getattr__(name: str):
    if name == "CommandsConfig":
        from .config import CommandsConfig

        return CommandsConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SITE", "AuditSink", "AuthMode", "Code", "CommandOutcome", "CommandRouter", "CommandsConfig", "IdStore",
           "Refusal", "WriteGate", "Writer", "sign"]
