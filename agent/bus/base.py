"""Shared transports ("lines"): the contract between the core and bus implementations.

A bus owns its lock, inter-frame gap, reconnects and backoff. Drivers receive a bus handle from
``BusPool.get(line_name)``, never a port name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..contract.lazy import lazy_exports
from ..contract.lines import Bus, LineKind
from .kinds import LINE_KINDS

if TYPE_CHECKING:
    from ..contract.config import LineConfig

# the serial settings' model (pydantic) is beside its behaviour, in agent.bus.serial_settings
__getattr__ = lazy_exports(__name__, {"SerialSettings": "agent.bus.serial_settings"})


class Parity(enum.StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


class SerialBase:
    """Mixin of :class:`~agent.bus.serial_settings.SerialSettings` (and of its plain twin)."""

    def serial_identity(self) -> tuple:
        return (self.baudrate, self.bytesize, str(self.parity), self.stopbits)


class BusPool:
    """Creates each configured line's bus once, on first use, and closes them all at the end."""

    def __init__(self, lines: Mapping[str, LineConfig], kinds: Mapping[str, LineKind] | None = None):
        """``kinds`` defaults to the installed line kinds (the ``edge_agent.lines`` entry points)."""
        self._lines = dict(lines)
        self._kinds = LINE_KINDS if kinds is None else kinds
        self._buses: dict[str, Bus] = {}

    def get(self, name: str) -> Any:
        bus = self._buses.get(name)
        if bus is None:
            cfg = self._lines.get(name)
            if cfg is None:
                raise KeyError(f"no line named {name!r} is configured")
            bus = self._kinds[cfg.type].factory(name, cfg)
            self._buses[name] = bus
        return bus

    def stats(self) -> dict[str, Any]:
        return {n: b.stats() for n, b in self._buses.items() if hasattr(b, "stats")}

    async def close(self) -> None:
        for bus in self._buses.values():
            try:
                await bus.close()
            except Exception:  # noqa: BLE001 - closing must not stop other buses closing
                pass
        self._buses.clear()
