"""SunSpec devices over Modbus (``type = "sunspec"``): PV inverters, meters, storage.

On open the driver finds the ``SunS`` marker and walks the model chain; each configured model must be
there (a missing one is a typed error naming it). Each poll reads every configured model's block (one
request per model, split at 125 registers) and decodes the catalog's points with their scale factors.
Writes: ``power_limit`` (model 123 or 704, % of WMax, the inverter's output/export cap) and ``battery_power``
(model 124, W, positive discharges, negative charges), only when declared in ``writable``.
"""

from __future__ import annotations

import math
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

from .catalog import Entry, entries
from .codec import decode_model, encode_point, scale_of
from .discovery import Found, discover
from .models import model
from .points import BATTERY_POWER, POWER_LIMIT

if TYPE_CHECKING:
    from agent.contract import ModbusLine

    from .config import SunSpecConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"SunSpecConfig": "drivers.sunspec.config"})

MAX_READ = 125
CHARGE, DISCHARGE = 1, 2  # StorCtl_Mod bits


class SunSpecDriver:
    def __init__(self, config: SunSpecConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.found: dict[int, Found] = {}
        self.base: int | None = None
        self._items: list[tuple[int, Entry]] = [(m, e) for m in config.models for e in entries(m)]
        self._series = np.arange(len(self._items), dtype=np.int32)

    def metrics(self) -> list[MetricSpec]:
        return [e.spec() for _, e in self._items]  # (what catalog.metrics_for lists for the config)

    async def _discover(self) -> None:
        base, chain = await discover(self.bus, self.config.unit, base=self.config.base,
                                     timeout=self.config.request_timeout)
        found: dict[int, Found] = {}
        for f in chain:
            found.setdefault(f.id, f)
        missing = [m for m in self.config.models if m not in found]
        if missing:
            have = ", ".join(str(f.id) for f in chain) or "none"
            raise ProtocolError(f"unit {self.config.unit}: SunSpec model(s) {', '.join(map(str, missing))} "
                                f"not on the device (its chain: {have})")
        self.base, self.found = base, found

    async def open(self) -> None:
        """Discovery happens on the first read, so a device that is off at start-up is retried by the scheduler."""

    async def _block(self, mid: int) -> list[int]:
        f = self.found[mid]
        total = min(2 + f.length, 2 + model(mid).length)
        regs: list[int] = []
        while len(regs) < total:
            n = min(MAX_READ, total - len(regs))
            regs += await self.bus.read_registers(self.config.unit, fc=3, address=f.address + len(regs), count=n,
                                                  timeout=self.config.request_timeout)
        return regs

    async def read(self) -> Batch:
        if not self.found:
            await self._discover()
        values = np.full(len(self._items), math.nan)
        i = 0
        for mid in self.config.models:
            block = await self._block(mid)
            if block[0] != mid:  # the map moved (firmware update, a different device on the unit)
                where = self.found[mid].address
                self.found = {}
                raise ProtocolError(f"unit {self.config.unit}: model {mid} no longer at {where}")
            ents = entries(mid)
            decoded = decode_model(model(mid), block, [e.point for e in ents])
            for e in ents:
                values[i] = decoded[e.point] * e.scale + e.offset
                i += 1
        quality = np.where(np.isfinite(values), 0, int(Quality.DEVICE_FLAGGED)).astype(np.uint32)
        n = len(values)
        return Batch(self._series.copy(), np.full(n, self.clock.now_ms(), np.int64), values, quality)

    async def _put(self, mid: int, block: list[int], values: dict[str, float]) -> None:
        m = model(mid)
        addr = self.found[mid].address
        for name, v in values.items():
            p = m.points[name]
            words = encode_point(p, v, scale_of(m, p, block))
            await self.bus.write_registers(self.config.unit, address=addr + p.offset, values=words,
                                           timeout=self.config.request_timeout)

    async def write(self, point: str, value: float | None) -> float:
        if not self.found:
            await self._discover()
        if point == POWER_LIMIT and value is not None:
            if 123 in self.config.models:
                await self._put(123, await self._block(123), {"WMaxLimPct": value, "WMaxLim_Ena": 1})
            else:  # 704: the limit, then its enable
                await self._put(704, await self._block(704), {"WMaxLimPct": value, "WMaxLimPctEna": 1})
            return value
        if point == BATTERY_POWER and value is not None:
            block = await self._block(124)
            rating = decode_model(model(124), block, ["WChaMax"])["WChaMax"]
            if not math.isfinite(rating) or rating <= 0:
                raise ProtocolError(f"unit {self.config.unit}: battery reports no WChaMax, cannot set its power")
            pct = min(100.0, abs(value) / rating * 100.0)
            if value > 0:
                vals = {"OutWRte": pct, "InWRte": 0.0, "StorCtl_Mod": DISCHARGE}
            elif value < 0:
                vals = {"InWRte": pct, "OutWRte": 0.0, "StorCtl_Mod": CHARGE}
            else:
                vals = {"InWRte": 0.0, "OutWRte": 0.0, "StorCtl_Mod": CHARGE | DISCHARGE}
            await self._put(124, block, vals)
            return math.copysign(pct * rating / 100.0, value) if value else 0.0
        raise ProtocolError(f"{point!r} is not a SunSpec point this driver writes")

    async def close(self) -> None:
        """The line is shared and closed by the core."""
