"""SunSpec devices over Modbus (``type = "sunspec"``): PV inverters, meters, storage.

On open the driver finds the ``SunS`` marker and walks the model chain; each configured model must be
there (a missing one is a typed error naming it). Each poll reads every configured model's block (one
request per model, split at 125 registers) and decodes the catalog's points with their scale factors.
Writes: ``power_limit`` (model 123 or 704, % of WMax, the inverter's output/export cap) and ``battery_power``
(model 124, W, positive discharges, negative charges), only when declared in ``writable``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from agent.contract import (
    Batch,
    DriverContext,
    EnergyConfig,
    MetricSpec,
    ModbusDevice,
    ModbusLine,
    Point,
    ProtocolError,
    Quality,
)

from .catalog import Entry, entries
from .codec import decode_model, encode_point, scale_of
from .discovery import Found, discover
from .models import METERS, SUPPORTED, ModelsUnavailable, model

MAX_READ = 125
POWER_LIMIT = "power_limit"
BATTERY_POWER = "battery_power"
CHARGE, DISCHARGE = 1, 2  # StorCtl_Mod bits


class SunSpecConfig(ModbusDevice):
    type: Literal["sunspec"]
    models: tuple[int, ...] = Field(description="SunSpec models to read, e.g. [103, 123, 124] "
                                                "(`edge-agent scan` lists a device's chain).")
    base: int | None = Field(None, ge=0, le=65535, description="Register of the SunS marker (default: try 40000, 0, 50000).")
    writable: tuple[Literal["power_limit", "battery_power"], ...] = Field(
        (), description='Points commands and the site controller may write: "power_limit" (model 123 or 704), '
                        '"battery_power" (model 124).')
    battery_max_w: float | None = Field(None, gt=0, description="Battery power rating (W): the bounds of battery_power.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _default_energy(cls, data: Any) -> Any:
        """With a meter model, the energy ledger books the grid import (not the PV production)."""
        if isinstance(data, dict) and "energy" not in data and METERS & set(data.get("models") or ()):
            data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("models")
    @classmethod
    def _models(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("list at least one SunSpec model")
        bad = [m for m in v if m not in SUPPORTED]
        if bad:
            raise ValueError(f"unsupported SunSpec model(s) {', '.join(map(str, bad))} "
                             f"(supported: {', '.join(map(str, sorted(SUPPORTED)))})")
        if len(set(v)) != len(v):
            raise ValueError("a model is listed twice")
        try:
            for m in v:
                model(m)
        except ModelsUnavailable as e:
            raise ValueError(str(e)) from None
        names = [e.metric for m in v for e in entries(m)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"models {', '.join(map(str, v))} both deliver {', '.join(dup)}: list one of them")
        return v

    @model_validator(mode="after")
    def _writes_possible(self) -> SunSpecConfig:
        if POWER_LIMIT in self.writable and not {123, 704} & set(self.models):
            raise ValueError("power_limit is written through model 123 or 704: add one of them to models")
        if BATTERY_POWER in self.writable:
            if 124 not in self.models:
                raise ValueError("battery_power is written through model 124: add 124 to models")
            if self.battery_max_w is None:
                raise ValueError("battery_power needs battery_max_w (the battery's power rating, W)")
        return self

    def points(self) -> list[Point]:
        out = []
        if {123, 704} & set(self.models):
            out.append(Point(POWER_LIMIT, unit="%", low=0.0, high=100.0, writable=POWER_LIMIT in self.writable,
                             meaning="inverter output cap in % of WMax (export limit); 100 lifts it"))
        if 124 in self.models and self.battery_max_w is not None:
            out.append(Point(BATTERY_POWER, unit="W", low=-self.battery_max_w, high=self.battery_max_w,
                             writable=BATTERY_POWER in self.writable,
                             meaning="battery power set-point: positive discharges, negative charges, 0 holds"))
        return out


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
        return [e.spec() for _, e in self._items]

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
