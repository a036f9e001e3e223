"""Points: the one vocabulary for what a device can be told to do.

A device config declares its points (:class:`DeclaresPoints`): name, kind, unit, bounds, whether the
gateway may write it (from the config's ``writable`` key) and what a write means. Its driver accepts
writes by name (:class:`PointControl`). The write gate checks the declaration and nothing else, and the
command path offers every writable point through the generic ``write`` command; a config may also
name legacy command actions that write one of its points (:meth:`DeclaresPoints.aliases`). The core
never names a driver's point.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PointKind(enum.StrEnum):
    NUMBER = "number"  # a value within [low, high] (whole numbers if ``integer``)
    SWITCH = "switch"  # 0 or 1
    ACTION = "action"  # a write carries no value (start, stop, sync the clock ...)


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a device, as its config declares it.

    ``below_low``: the value an automatic writer (the site controller) is clamped to when it asks for
    less than ``low`` (e.g. 0: pause); commands are refused instead. ``meaning`` says what a write does,
    in a few words ("amps offered per phase; 0 pauses")."""

    name: str
    kind: PointKind = PointKind.NUMBER
    unit: str = ""
    low: float | None = None
    high: float | None = None
    integer: bool = False
    writable: bool = False
    meaning: str = ""
    below_low: float | None = None

    def __post_init__(self) -> None:
        if self.kind is PointKind.SWITCH:
            object.__setattr__(self, "low", 0.0)
            object.__setattr__(self, "high", 1.0)
            object.__setattr__(self, "integer", True)

    @property
    def takes_value(self) -> bool:
        return self.kind is not PointKind.ACTION

    def refusal(self, value: float | None) -> str | None:
        """Why ``value`` may not be written to this point (ignoring ``writable``), or None when it may."""
        if not self.takes_value:
            return None if value is None else f"{self.name} takes no value"
        if value is None or not math.isfinite(value):
            return f"{self.name} needs a finite number"
        unit = f" {self.unit}" if self.unit else ""
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        if not lo <= value <= hi:
            return f"{self.name} {value:g}{unit} is outside [{lo:g}, {hi:g}]{unit}"
        if self.integer and not float(value).is_integer():
            return f"{self.name} takes a whole number, not {value:g}"
        return None

    def clamp(self, value: float) -> float:
        """The value an automatic writer asking for ``value`` gets (see ``below_low``)."""
        if self.high is not None and value > self.high:
            return self.high
        if self.low is not None and value < self.low and self.below_low is not None and value >= self.below_low:
            return self.below_low
        return value

    def describe(self) -> dict[str, object]:
        """The declaration as plain data (docs, ``edge-agent drivers``, result payloads)."""
        out: dict[str, object] = {"name": self.name, "kind": self.kind.value, "writable": self.writable}
        for key in ("unit", "low", "high", "meaning"):
            v = getattr(self, key)
            if v not in (None, ""):
                out[key] = v
        if self.integer and self.kind is PointKind.NUMBER:
            out["integer"] = True
        return out


@runtime_checkable
class DeclaresPoints(Protocol):
    """A device config declaring its points; only those with ``writable`` set may be written.

    It may also offer ``aliases() -> Mapping[str, str]``: command actions that write one point, action
    -> point name; ``{output}`` in the name is filled with the command's ``"output"`` number
    (``{"set_output": "output{output}"}``). See :func:`aliases_of`."""

    def points(self) -> Sequence[Point]: ...


def aliases_of(config: object) -> Mapping[str, str]:
    """The command aliases a device config declares (none when it declares no ``aliases()``)."""
    fn = getattr(config, "aliases", None)
    return dict(fn()) if callable(fn) else {}


@runtime_checkable
class PointControl(Protocol):
    """A driver accepting a write to a named point (``value`` None for an action); returns what is in
    force afterwards, raises a typed device error when the device refuses."""

    async def write(self, point: str, value: float | None) -> float | bool: ...
