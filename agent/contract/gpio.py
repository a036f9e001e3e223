"""GPIO devices: the config mixin (``line`` + ``pin``), edge and pull settings, the line handle.

Edges arrive on the event-loop thread as ``callback(pin, level, ts_ns)``; ``ts_ns`` is a
monotonic timestamp (kernel event time where the backend has one). Nothing debounces in the
kernel: drivers debounce in software and count what they reject.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import Field

from .config import LineDevice

GPIO_BUS = "gpio"
EdgeCallback = Callable[[int, int, int], None]  # (pin, level after the edge, monotonic timestamp ns)


class Edge(enum.StrEnum):
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


class Pull(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    OFF = "off"


class GpioDevice(LineDevice):
    """A device on one pin of a GPIO line: ``line`` + ``pin``."""

    BUS: ClassVar[str | None] = GPIO_BUS

    line: str = Field(description="Name of a `gpio` line.")
    pin: int = Field(ge=0, le=1023, description="GPIO number (BCM numbering on a Raspberry Pi).")


@runtime_checkable
class GpioLine(Protocol):
    """The handle ``ctx.buses.get(line)`` returns for a GPIO line."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None:
        """Call ``callback(pin, level, ts_ns)`` on the event loop for every matching edge."""
        ...

    def unwatch(self, pin: int) -> None: ...

    def read(self, pin: int) -> int:
        """The pin's level now (0 or 1)."""
        ...
