"""Inverters that speak their vendor's own Modbus map (``type = "pv_inverter"``): Huawei SUN2000, Sungrow SH.

Each poll reads the profile's registers in block reads (per function code, merged across small holes)
and decodes them into one batch. Writes go through the profile's points: a setpoint puts its registers
in order; ``battery_power`` picks the charge, discharge or stop sequence by the value's sign. Only
points listed in ``writable`` are writable, within bounds from the profile or the config.
"""

from __future__ import annotations

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

from .profile import PointKind, PointSpec, Profile, blocks, load_profile, profile_names


class PvInverterConfig(ModbusDevice):
    type: Literal["pv_inverter"]
    profile: str = Field(description="Register profile: " + ", ".join(profile_names()))
    unit: int | None = Field(None, ge=1, le=255, description="Unit id; default from the profile.")  # type: ignore[assignment]
    metrics: tuple[str, ...] | None = Field(None, description="Read only these metrics (default: all the profile's).")
    writable: tuple[str, ...] = Field((), description="Points commands and the site controller may write "
                                                      "(e.g. battery_power, export_limit_w, power_limit).")
    battery_max_w: float | None = Field(None, gt=0, description="Battery power rating (W): the bounds of battery_power.")
    export_max_w: float | None = Field(None, gt=0, description="Highest export limit accepted (W): the bound of export_limit_w.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """The profile's unit id; the energy ledger books the grid import (the inverters carry the meter)."""
        if isinstance(data, dict) and data.get("profile") in profile_names():
            prof = load_profile(data["profile"])
            if data.get("unit") is None:
                data = {**data, "unit": prof.profile.default_unit}
            if "energy" not in data and any(r.name == "energy_import" for r in prof.registers):
                data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("profile")
    @classmethod
    def _known(cls, v: str) -> str:
        load_profile(v)  # ConfigError naming the known profiles
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PvInverterConfig:
        prof = load_profile(self.profile)
        known = [r.name for r in prof.registers]
        bad = [m for m in self.metrics or () if m not in known]
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(bad)} for profile {self.profile} (known: {', '.join(known)})")
        if self.metrics is not None and not self.metrics:
            raise ValueError("list at least one metric, or leave metrics out to read all")
        points = {p.name: p for p in prof.points}
        for name in self.writable:
            p = points.get(name)
            if p is None:
                raise ValueError(f"{name!r} is not a point of profile {self.profile} "
                                 f"(its points: {', '.join(points) or 'none'})")
            if p.high_from and getattr(self, p.high_from) is None:
                raise ValueError(f"{name} needs {p.high_from} (its upper bound, W)")
            _, high = self.bounds(p)
            if high is not None and high > p.largest():
                raise ValueError(f"{name}: {p.high_from or 'high'} {high:g} is more than the device's register "
                                 f"holds ({p.largest():g})")
        return self

    def bounds(self, p: PointSpec) -> tuple[float | None, float | None]:
        high = getattr(self, p.high_from) if p.high_from else p.high
        low = p.low if p.low is not None else (-high if p.kind is PointKind.BATTERY and high is not None else None)
        return low, high

    def points(self) -> list[Point]:
        out = []
        for p in load_profile(self.profile).points:
            low, high = self.bounds(p)
            if p.high_from and high is None:
                continue  # no rating configured: the point is not offered
            out.append(Point(p.name, unit=p.unit, low=low, high=high, writable=p.name in self.writable,
                             meaning=p.meaning))
        return out


class PvInverterDriver:
    def __init__(self, config: PvInverterConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.profile: Profile = load_profile(config.profile)
        self.unit = int(config.unit or self.profile.profile.default_unit)
        wanted = set(config.metrics or [r.name for r in self.profile.registers])
        self.registers = [r for r in self.profile.registers if r.name in wanted]
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
