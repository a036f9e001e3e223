"""Digital input on a GPIO pin (door contact, alarm relay, pump running): state and change count."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import DriverContext, Edge, GpioDevice, GpioLine, MetricKind, MetricSpec, Pull, Sample


class DigitalInputConfig(GpioDevice):
    type: Literal["digital_input"]
    pull: Pull = Pull.UP
    invert: bool = Field(False, description="Report 1 when the pin is low (contacts to ground with a pull-up).")
    min_interval_ms: float = Field(20.0, ge=0, le=60_000, description="Edges closer than this to the last counted change are rejected (and counted).")


class DigitalInputDriver:
    def __init__(self, config: DigitalInputConfig, ctx: DriverContext):
        self.config = config
        self.bus: GpioLine = ctx.buses.get(config.line)
        self.changes = 0
        self.rejected = 0
        self._last_ns: int | None = None
        self._min_ns = int(config.min_interval_ms * 1e6)

    def metrics(self) -> list[MetricSpec]:
        return [MetricSpec("state", "", MetricKind.STATE), MetricSpec("changes", "", MetricKind.COUNTER),
                MetricSpec("rejected_edges", "", MetricKind.COUNTER)]

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
