"""Pulse counter on a GPIO pin (S0 meter outputs, water/gas meter reed contacts).

Edges are debounced in software by a minimum interval between accepted pulses; every rejected
edge is counted and published (``rejected_edges``), never silently lost. The running total is
persisted under the state directory (atomic write + fsync) within ``persist_interval`` of a
pulse and before every reading is returned, so a restart neither loses a reported pulse nor
counts one twice.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING

from agent.contract import DriverContext, GpioLine, MetricKind, MetricSpec, Sample
from agent.contract.lazy import lazy_exports

from . import state

if TYPE_CHECKING:
    from .config import PulseCounterConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"PulseCounterConfig": "drivers.pulse_counter.config"})


class Quantity(enum.StrEnum):
    ENERGY = "energy"  # pulses_per_unit = imp/kWh; metrics energy (kWh) and power (kW)
    VOLUME = "volume"  # a water meter: pulses_per_unit = imp/m3 (1 imp/10 L = 100); volume (m3) and flow (m3/h)
    GAS = "gas"  # a gas meter: pulses_per_unit = imp/m3; metrics gas_volume (m3) and gas_flow (m3/h)
    COUNT = "count"  # pulses only, and rate (1/s)


_DERIVED = {
    Quantity.ENERGY: (MetricSpec("energy", "kWh", MetricKind.COUNTER), MetricSpec("power", "kW"), 3600.0),
    Quantity.VOLUME: (MetricSpec("volume", "m3", MetricKind.COUNTER, medium="water"), MetricSpec("flow", "m3/h"), 3600.0),
    Quantity.GAS: (MetricSpec("gas_volume", "m3", MetricKind.COUNTER, medium="gas"), MetricSpec("gas_flow", "m3/h"), 3600.0),
    Quantity.COUNT: (None, MetricSpec("rate", "1/s"), 1.0),
}


def metrics_for(config: PulseCounterConfig) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): the pulses, the rejected edges, and what the
    pulses measure (its total and rate) by ``quantity``."""
    total, rate, _ = _DERIVED[config.quantity]
    return [MetricSpec("pulses", "", MetricKind.COUNTER), MetricSpec("rejected_edges", "", MetricKind.COUNTER),
            *(m for m in (total, rate) if m is not None)]


class PulseCounterDriver:
    def __init__(self, config: PulseCounterConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: GpioLine = ctx.buses.get(config.line)
        self.path = ctx.state_dir / "pulse_counter" / f"{config.name}.json"
        self.pulses = 0
        self.rejected = 0
        self._last_edge_ns: int | None = None
        self._min_ns = int(config.min_interval_ms * 1e6)
        self._saved: dict[str, int] = {}
        self._save_lock = asyncio.Lock()
        self._flush: asyncio.TimerHandle | None = None
        self._flush_task: asyncio.Task | None = None
        self._last_read: tuple[float, int] | None = None
        self._rate_scale = _DERIVED[config.quantity][2]
        self._metrics = metrics_for(config)

    def metrics(self) -> list[MetricSpec]:
        return list(self._metrics)

    async def open(self) -> None:
        saved = await asyncio.to_thread(state.load, self.path)
        self.pulses, self.rejected = saved.get("pulses", 0), saved.get("rejected_edges", 0)
        self._saved = dict(saved)
        self._last_read = None
        await self.bus.open()
        self.bus.watch(self.config.pin, self.config.edge, self._on_edge, pull=self.config.pull)

    def _on_edge(self, pin: int, level: int, ts_ns: int) -> None:
        """Runs on the event loop (the bus hands edges over from the backend's thread)."""
        if self._last_edge_ns is not None and ts_ns - self._last_edge_ns < self._min_ns:
            self.rejected += 1
        else:
            self._last_edge_ns = ts_ns
            self.pulses += 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.config.persist_interval, self._flush_due)

    def _flush_due(self) -> None:
        self._flush = None
        self._flush_task = asyncio.create_task(self._persist())

    async def _persist(self) -> dict[str, int]:
        async with self._save_lock:
            snap = {"pulses": self.pulses, "rejected_edges": self.rejected}
            if snap != self._saved:
                await asyncio.to_thread(state.save, self.path, snap)
                self._saved = snap
            return snap

    async def read(self) -> list[Sample]:
        snap = await self._persist()  # never report a count that a crash could take back
        pulses = snap["pulses"]
        out = [Sample("pulses", float(pulses)), Sample("rejected_edges", float(snap["rejected_edges"]))]
        total, rate, scale = _DERIVED[self.config.quantity]
        k = self.config.pulses_per_unit
        if total is not None:
            out.append(Sample(total.name, pulses / k))
        now = self.clock.monotonic()
        if self._last_read is not None and now > self._last_read[0]:
            dt, dp = now - self._last_read[0], pulses - self._last_read[1]
            out.append(Sample(rate.name, dp / k / dt * scale if total is not None else dp / dt))
        self._last_read = (now, pulses)
        return out

    async def close(self) -> None:
        self.bus.unwatch(self.config.pin)
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await self._persist()
