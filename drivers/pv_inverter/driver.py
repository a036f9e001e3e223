"""Inverters that speak their vendor's own Modbus map (``type = "pv_inverter"``): Huawei SUN2000, Sungrow SH.

Each poll reads the profile's registers in block reads (per function code, merged across small holes)
and decodes them into one batch. Writes go through the profile's points: a setpoint puts its registers
in order; ``battery_power`` picks the charge, discharge or stop sequence by the value's sign. Only
points listed in ``writable`` are writable, within bounds from the profile or the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agent.contract import (
    Batch,
    DriverContext,
    MetricSpec,
    ProtocolError,
    Quality,
)
from agent.contract.lazy import lazy_exports

from .registers import PointKind, blocks, selected

if TYPE_CHECKING:
    from agent.contract import ModbusLine

    from .config import PvInverterConfig
    from .profile import Profile

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"PvInverterConfig": "drivers.pv_inverter.config"})


class PvInverterDriver:
    def __init__(self, config: PvInverterConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.profile: Profile = config.loaded_profile()  # loaded at validation
        self.unit = int(config.unit or self.profile.profile.default_unit)
        self.registers = selected(self.profile, config.metrics)
        self._index = {r.name: i for i, r in enumerate(self.registers)}
        meta = self.profile.profile
        self.plan = blocks(self.registers, max_registers=meta.max_registers, max_gap=meta.max_gap)
        self._series = np.arange(len(self.registers), dtype=np.int32)

    def metrics(self) -> list[MetricSpec]:
        return [r.metric() for r in self.registers]

    async def open(self) -> None:
        """Nothing to do: the line is the core's."""

    async def close(self) -> None:
        """The line is shared and closed by the core."""

    async def read(self) -> Batch:
        values = np.full(len(self.registers), np.nan)
        for fc, start, count, members in self.plan:
            regs = await self.bus.read_registers(self.unit, fc=fc, address=start, count=count,
                                                 timeout=self.config.request_timeout)
            if len(regs) != count:
                raise ProtocolError(f"unit {self.unit}: {len(regs)} registers from {start}, expected {count}")
            for r in members:
                off = r.address - start
                values[self._index[r.name]] = r.value(regs[off:off + r.count])
        quality = np.where(np.isfinite(values), 0, int(Quality.DEVICE_FLAGGED)).astype(np.uint32)
        n = len(values)
        return Batch(self._series.copy(), np.full(n, self.clock.now_ms(), np.int64), values, quality)

    async def write(self, point: str, value: float | None) -> float:
        p = self.profile.point(point)
        if p is None or value is None:
            raise ProtocolError(f"{point!r} is not a point of profile {self.profile.name} this driver writes")
        magnitude = abs(value) if p.kind is PointKind.BATTERY else value
        steps = p.steps(value)
        try:
            frames = [(s.address, s.words(magnitude)) for s in steps]
        except (ValueError, OverflowError) as e:  # the value does not fit the register
            raise ProtocolError(f"{point} {value:g}: {e}") from None
        for address, words in frames:
            await self.bus.write_registers(self.unit, address=address, values=words,
                                           timeout=self.config.request_timeout)
        return value
