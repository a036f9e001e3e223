"""Generic register-map meter driver (``type = "modbus_meter"``): a profile or inline registers.

Each poll runs the precomputed optimal request plan on the device's line and decodes every
register into a float64 column. A failed request fails the whole poll with the bus's typed
error (the scheduler backs off); the driver never sleeps and never retries on its own.
"""

from __future__ import annotations

import math
import struct
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.contract import Batch, DriverContext, MetricSpec, Quality
from agent.contract.lazy import lazy_exports
from agent.contract.modbus_block import BlockDecoder, BlockValue
from agent.contract.modbus_values import decode

from .metrics import listed, request_plan
from .planner import frame_bytes, wire_time

if TYPE_CHECKING:
    from agent.contract import ModbusLine

    from .config import ModbusMeterConfig

# the config model (pydantic) is beside it; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"ModbusMeterConfig": "drivers.modbus_meter.config"})


class ModbusMeterDriver:
    def __init__(self, config: ModbusMeterConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.registers = config.resolved_registers()
        self.plan = request_plan(config, self.registers)
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
        return listed(self.config, self.registers)

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

