"""Bounded writable points: how a device that is not a charger offers writes to the write gate.

A device config that declares writable points implements :class:`DeclaresPoints` (each point it lets
the gateway write, with its bounds); its driver implements :class:`PointControl`. The write gate asks
the config, never the device type, so any driver can offer bounded writes (``set_interval``,
``set_output`` commands) without the core knowing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class PointBounds:
    """The values a write to one point may carry: ``low <= value <= high``, whole numbers if ``integer``."""

    low: float
    high: float
    integer: bool = False
    unit: str = ""

    def refusal(self, point: str, value: float) -> str | None:
        """Why ``value`` may not be written to ``point``, or None when it may."""
        unit = f" {self.unit}" if self.unit else ""
        if not self.low <= value <= self.high:
            return f"{point} {value:g}{unit} is outside [{self.low:g}, {self.high:g}]{unit}"
        if self.integer and not float(value).is_integer():
            return f"{point} takes a whole number, not {value:g}"
        return None


@runtime_checkable
class DeclaresPoints(Protocol):
    """A device config declaring the points the gateway may write (from its ``writable`` key)."""

    def writable_points(self) -> Mapping[str, PointBounds]: ...


@runtime_checkable
class PointControl(Protocol):
    """A driver accepting a write to a named point; returns the value in force afterwards, raises a
    typed device error when the device refuses."""

    async def write(self, point: str, value: float) -> float: ...
