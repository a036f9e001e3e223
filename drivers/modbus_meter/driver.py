"""Generic register-map meter driver (``type = "modbus_meter"``): a profile or inline registers.

Each poll runs the precomputed optimal request plan on the device's line and decodes every
register into a float64 column. A failed request fails the whole poll with the bus's typed
error (the scheduler backs off); the driver never sleeps and never retries on its own.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.contract import Batch, DriverContext, MetricSpec, ModbusDevice, ModbusLine, Quality
from agent.contract.modbus_block import BlockDecoder, BlockValue
from agent.contract.modbus_values import decode

from .codec import ProfileError, RegisterSpec, check_registers, load_profile, parse_address, profile_names
from .facts import metric_facts
from .planner import Item, frame_bytes, plan, wire_time


class ModbusMeterConfig(ModbusDevice):
    type: Literal["modbus_meter"]
    unit: int = Field(1, ge=1, le=255, description="Modbus unit id; defaults to the profile's (S8: 254, else 1).")
    profile: str | None = Field(None, description="A shipped register profile, e.g. sdm630.")
    registers: tuple[RegisterSpec, ...] = Field((), description="Inline registers (added to the profile's, if any).")
    metrics: tuple[str, ...] | None = Field(None, description="Read only these metrics (default: all).")
    energy_base: int | None = Field(None, description="DTSU666 energy register base: \"0x1000\" or \"0x4000\".")
    max_registers: int | None = Field(None, ge=1, le=125, description="Override the profile's registers per request.")
    max_gap: int | None = Field(None, ge=0, le=125, description="Override the profile's largest hole read over.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _default_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "unit" not in data:
            prof = data.get("profile")
            known = isinstance(prof, str) and prof in profile_names()
            data = {**data, "unit": load_profile(prof).profile.default_unit if known else 1}
        return data

    @field_validator("profile")
    @classmethod
    def _profile_exists(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                load_profile(v)
            except ProfileError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("registers")
    @classmethod
    def _registers_ok(cls, v: tuple[RegisterSpec, ...], info: ValidationInfo) -> tuple[RegisterSpec, ...]:
        prof = info.data.get("profile")
        base = load_profile(prof).registers if prof else ()
        check_registers((*base, *v))
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics_known(cls, v: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("list at least one metric, or leave metrics out to read all")
        known = [r.name for r in info.data.get("registers", ())]
        if info.data.get("profile"):
            known = [r.name for r in load_profile(info.data["profile"]).registers] + known
        bad = [m for m in v if m not in known]
        if bad:
            import difflib  # only when a suggestion is built: not loaded by a running agent
            close = [c for m in bad for c in difflib.get_close_matches(m, known, n=1, cutoff=0.6)]
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))}; {hint}available: {', '.join(known)}")
        return v

    _addr = field_validator("energy_base", mode="before")(parse_address)

    @field_validator("energy_base")
    @classmethod
    def _base_allowed(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None:
            return v
        prof = info.data.get("profile")
        opt = load_profile(prof).profile.bases.get("energy_base") if prof else None
        if opt is None:
            raise ValueError(f"profile {prof!r} has no energy_base option")
        if v not in opt.choices:
            raise ValueError(f"must be one of {', '.join(hex(c) for c in opt.choices)}, not {hex(v)}")
        return v

    @model_validator(mode="after")
    def _something_to_read(self) -> ModbusMeterConfig:
        if self.profile is None and not self.registers:
            raise ValueError("give profile = \"<name>\" or at least one [[devices.registers]] table")
        return self

    def resolved_registers(self) -> tuple[RegisterSpec, ...]:
        regs: tuple[RegisterSpec, ...] = ()
        if self.profile:
            bases = {"energy_base": self.energy_base} if self.energy_base is not None else {}
            regs = load_profile(self.profile).resolve(bases=bases)
        regs = (*regs, *self.registers)
        if self.metrics is not None:
            wanted = set(self.metrics)
            for r in regs:  # a status register is read too when it flags a wanted metric
                if any(f in wanted for f in r.flags):
                    wanted.add(r.name)
            regs = tuple(r for r in regs if r.name in wanted)
        return regs

    def limits(self) -> tuple[int, int]:
        info = load_profile(self.profile).profile if self.profile else None
        max_regs = self.max_registers or (info.max_registers if info else 125)
        max_gap = self.max_gap if self.max_gap is not None else (info.max_gap if info else 0)
        return max_regs, max_gap


class ModbusMeterDriver:
    def __init__(self, config: ModbusMeterConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.registers = config.resolved_registers()
        max_regs, max_gap = config.limits()
        items = [Item(i, r.fc, r.address, r.count) for i, r in enumerate(self.registers)]
        self.plan = plan(items, max_registers=max_regs, max_gap=max_gap)
        self._blocks = [(req.fc, req.address, req.count) for req in self.plan]
        regs = self.registers
        # one numpy decode per poll over the blocks' bytes laid end to end (``at``: each block's first
        # register there); registers that flag others are also decoded as integers
        at = np.cumsum([0] + [req.count for req in self.plan]).tolist()
        self._decoder = BlockDecoder([BlockValue(it.key, at[i] + it.address - req.address, regs[it.key].type,
                                                 regs[it.key].order, regs[it.key].scale, regs[it.key].offset)
                                      for i, req in enumerate(self.plan) for it in req.items])
        self._flag_words = [(it.key, at[i] + it.address - req.address, it.end - it.address)
                            for i, req in enumerate(self.plan) for it in req.items if regs[it.key].flags]
        n = len(regs)
        self._series = np.arange(n, dtype=np.int32)
        self._series.setflags(write=False)  # the same column every poll (the poller checks it once)
        index = {r.name: i for i, r in enumerate(self.registers)}
        self._flags = [(i, r.flag_mask, [index[f] for f in r.flags if f in index])
                       for i, r in enumerate(self.registers) if r.flags]
        self._cycles = 0
        self._last_read_s: float | None = None
        bpc, baud = getattr(self.bus, "bits_per_char", 0), getattr(self.bus, "baudrate", 0)
        self._plan_facts = {  # diagnostics' figures of the plan (neither it nor the line's framing changes)
            "unit": config.unit,
            "transactions_per_cycle": len(self.plan),
            "registers_read_per_cycle": sum(r.count for r in self.plan),
            "registers_used_per_cycle": sum(r.count for r in self.registers),
            "bytes_per_cycle": frame_bytes(self.plan),
            "wire_time_estimate_s": round(wire_time(self.plan, baudrate=baud, bits_per_char=bpc), 6) if baud else None,
            "plan": [r.label() for r in self.plan],
        }

    def metrics(self) -> list[MetricSpec]:
        info = load_profile(self.config.profile).profile if self.config.profile else None
        return [metric_facts(r.metric(), info) for r in self.registers]

    async def open(self) -> None:
        """Nothing to do: the shared line opens (and reopens) itself on first use."""

    async def read(self) -> Batch:
        t0 = time.perf_counter()
        n = len(self.registers)
        values = np.empty(n, np.float64)
        raw_ints: dict[int, int] = {}
        data = b"".join(await self.bus.read_register_blocks(self.config.unit, self._blocks,
                                                            timeout=self.config.request_timeout))
        self._decoder.decode_into(data, values)
        for key, start, count in self._flag_words:
            spec = self.registers[key]
            raw = decode(struct.unpack_from(f">{count}H", data, 2 * start), spec.type, spec.order)
            raw_ints[key] = int(raw) if math.isfinite(raw) else -1
        quality = np.zeros(n, np.uint32)
        if not math.isfinite(values.dot(values)):  # (one pass: finite only when every value is)
            quality[~np.isfinite(values)] = int(Quality.DEVICE_FLAGGED)
        for i, mask, targets in self._flags:
            if raw_ints.get(i, 0) & mask:
                quality[targets] |= int(Quality.DEVICE_FLAGGED)
        self._cycles += 1
        self._last_read_s = time.perf_counter() - t0
        ts = np.empty(n, np.int64)
        ts.fill(self.clock.now_ms())
        return Batch(self._series, ts, values, quality)

    async def close(self) -> None:
        """The line is shared and closed by the core."""

    def diagnostics(self) -> dict[str, Any]:
        if callable(unit_stats := getattr(self.bus, "unit_stats", None)):  # (its own unit, not every unit's)
            bus_unit = unit_stats(self.config.unit)
        else:
            bus_unit = (self.bus.stats() if hasattr(self.bus, "stats") else {}).get("units", {}).get(self.config.unit, {})
        return {
            **self._plan_facts,
            "cycles": self._cycles,
            "last_read_s": None if self._last_read_s is None else round(self._last_read_s, 6),
            "bus_unit": bus_unit,
        }

