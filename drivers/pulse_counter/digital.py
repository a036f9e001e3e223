"""Digital input on a GPIO pin (door contact, alarm relay, pump running): state and change count."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.contract import DriverContext, Edge, GpioLine, MetricKind, MetricSpec, Sample
from agent.contract.lazy import lazy_exports

if TYPE_CHECKING:
    from .config import DigitalInputConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"DigitalInputConfig": "drivers.pulse_counter.config"})


def metrics_for(config: DigitalInputConfig) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): the input's state, its changes, the edges rejected."""
    return [MetricSpec("state", "", MetricKind.STATE), MetricSpec("changes", "", MetricKind.COUNTER),
            MetricSpec("rejected_edges", "", MetricKind.COUNTER)]


class DigitalInputDriver:
    def __init__(self, config: DigitalInputConfig, ctx: DriverContext):
        self.config = config
        self.bus: GpioLine = ctx.buses.get(config.line)
        self.changes = 0
        self.rejected = 0
        self._last_ns: int | None = None
        self._min_ns = int(config.min_interval_ms * 1e6)

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    async def open(self) -> None:
        await self.bus.open()
        self.bus.watch(self.config.pin, Edge.BOTH, self._on_edge, pull=self.config.pull)

    def _on_edge(self, pin: int, level: int, ts_ns: int) -> None:
        if self._last_ns is not None and ts_ns - self._last_ns < self._min_ns:
            self.rejected += 1
            return
        self._last_ns = ts_ns
        self.changes += 1

    async def read(self) -> list[Sample]:
        level = self.bus.read(self.config.pin) ^ int(self.config.invert)
        return [Sample("state", float(level)), Sample("changes", float(self.changes)),
                Sample("rejected_edges", float(self.rejected))]

    async def close(self) -> None:
        self.bus.unwatch(self.config.pin)
