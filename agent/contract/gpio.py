"""GPIO devices: edge and pull settings, the line handle.

Edges arrive on the event-loop thread as ``callback(pin, level, ts_ns)``; ``ts_ns`` is a
monotonic timestamp (kernel event time where the backend has one). Nothing debounces in the
kernel: drivers debounce in software and count what they reject.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .lazy import lazy_exports

GPIO_BUS = "gpio"
# the config mixin (a model: pydantic) is in agent.contract.gpio_config, imported on first use
__getattr__ = lazy_exports(__name__, {"GpioDevice": "agent.contract.gpio_config"})
EdgeCallback = Callable[[int, int, int], None]  # (pin, level after the edge, monotonic timestamp ns)


class Edge(enum.StrEnum):
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


class Pull(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    OFF = "off"


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
