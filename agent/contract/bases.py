"""Behaviour of the device and line configs, without pydantic: the models inherit it, and so do their
plain twins (:mod:`agent.contract.plain`), which the running agent reads."""

from __future__ import annotations

from typing import ClassVar


class DeviceBase:
    """What every device config does (mixin of :class:`~agent.contract.config.DeviceConfig`)."""

    BUS: ClassVar[str | None] = None

    def lines_used(self) -> list[str]:
        """Names of shared bus lines this device uses (for cross-checks)."""
        line = getattr(self, "line", None)
        return [line] if isinstance(line, str) else []


class LineBase:
    """Mixin of :class:`~agent.contract.config.LineConfig` (``BUS``: the bus family it provides)."""

    BUS: ClassVar[str | None] = None
