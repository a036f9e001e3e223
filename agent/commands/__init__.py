"""Commands from upstream: validated, authorised, bounded, rate-limited, idempotent, audited.

Every write to a device, whoever asks (a command, the site controller), goes through one
:class:`WriteGate`; the app builds it and hands it to the router and the site controller::

    gate = WriteGate(devices, drivers, clock, timeout=..., audit=sink)
    router = CommandRouter(config.commands, devices=..., drivers=..., ids=..., site=site, gate=gate)
    outcome = await router.handle(device, payload)   # for each message on edge/{gw}/cmd/{device}
"""

from .auth import sign
from .config import AuthMode, CommandsConfig
from .gate import SITE, AuditSink, WriteGate, Writer
from .idstore import IdStore
from .parse import Code, Refusal
from .router import CommandOutcome, CommandRouter

__all__ = ["SITE", "AuditSink", "AuthMode", "Code", "CommandOutcome", "CommandRouter", "CommandsConfig", "IdStore",
           "Refusal", "WriteGate", "Writer", "sign"]
