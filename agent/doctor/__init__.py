"""``edge-agent doctor``: resolve and test everything a config names, one check per line.

Check families, one module each: the broker (``broker``, with the TLS classification in
``tls_probe``), lines and devices (``hardware``), files, clock and disk (``system``). Nothing in the
state directory is created or changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from ..config.validate import Validation
from .broker import check_broker, credentials_hidden
from .hardware import check_devices, check_lines
from .report import Check, Mark
from .system import check_clock, check_files, check_storage

__all__ = ["Check", "Mark", "remote_checks", "run_checks"]
_WORD = {Mark.OK: "ok", Mark.WARN: "warn", Mark.FAIL: "fail"}


def run_checks(validation: Validation) -> Iterator[Check]:
    """Every check, in the order a technician fixes things; yielded as each finishes."""
    cfg = validation.config
    yield from check_files(cfg)
    yield from check_broker(cfg, credentials_hidden=credentials_hidden(validation.warnings))
    lines = asyncio.run(check_lines(cfg))
    yield from lines
    broken = frozenset(c.subject.split()[1] for c in lines if c.mark is Mark.FAIL)
    yield from asyncio.run(check_devices(cfg, broken))
    yield check_clock(cfg)
    yield from check_storage(cfg)


def remote_checks(cfg) -> list[dict[str, str]]:
    """The checks a running agent can make on request (over MQTT) without disturbing itself: files,
    broker (a second client id), clock, storage; no line or device probe."""
    checks = [*check_files(cfg), *check_broker(cfg), check_clock(cfg), *check_storage(cfg)]
    return [{"mark": _WORD[c.mark], "subject": c.subject, "detail": c.detail, "hint": c.hint} for c in checks]
