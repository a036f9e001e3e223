"""Replay a CSV time series as a device, at real time, faster, or as fast as possible.

Technicians use it to test an uplink without hardware; we use it for benchmarks. With
``timestamps = "shift"`` the series is moved so its first row is "now" and time is scaled by
``speed``; with ``"original"`` the file's timestamps are published as they are.

The file is parsed once, in a worker thread that a poll's timeout does not cancel: a long file may
make the first polls time out, but a retry waits for the same parse instead of starting over. A row
whose timestamp steps back in time is published as it is, flagged ``device_flagged``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np

from agent.contract import (
    Batch,
    BusUnavailable,
    ConfigError,
    DriverContext,
    MetricSpec,
    Quality,
)
from agent.contract.lazy import lazy_exports

from .codec import out_of_order, read_series
from .metrics import TimestampMode, metrics_for

if TYPE_CHECKING:
    from .config import ReplayConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"ReplayConfig": "drivers.replay.config"})


class ReplayDriver:
    def __init__(self, config: ReplayConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self._ts = np.empty(0, np.int64)
        self._val = np.empty(0, np.float64)
        self._pace = np.empty(0, np.int64)  # running maximum of _ts: what rows are released against
        self._flag = np.empty(0, bool)  # rows that step back in time
        self._parse: asyncio.Future | None = None
        self._pos = 0
        self._lap = 0
        self._t0_wall = 0
        self._t0_mono = 0.0
        self._span = 0

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    async def _parsed(self) -> tuple[np.ndarray, np.ndarray]:
        """The file's columns, parsed once in a thread (kept across reopen; a failed parse is retried)."""
        if self._parse is None or (self._parse.done() and self._parse.exception() is not None):
            self._parse = asyncio.ensure_future(asyncio.to_thread(
                read_series, self.config.file, ts_column=self.config.ts_column, value_column=self.config.value_column))
        try:
            return await asyncio.shield(self._parse)  # a poll timeout must not throw the parse away
        except ConfigError as e:
            raise BusUnavailable(str(e)) from None

    async def open(self) -> None:
        self._ts, self._val = await self._parsed()
        self._flag = out_of_order(self._ts)
        self._pace = np.maximum.accumulate(self._ts)
        step = int(np.median(np.diff(self._pace))) if len(self._ts) > 1 else 1000
        self._span = int(self._pace[-1] - self._ts[0]) + max(step, 1)
        self._t0_wall = self.clock.now_ms()
        self._t0_mono = self.clock.monotonic()
        self._pos = 0
        self._lap = 0

    def _due(self) -> int:
        """Index one past the last row that is due now (file time, lap-relative)."""
        cfg = self.config
        if cfg.speed == 0:
            return min(len(self._ts), self._pos + cfg.max_rows_per_read)
        elapsed_file_ms = (self.clock.monotonic() - self._t0_mono) * 1000 * cfg.speed - self._lap * self._span
        limit = self._ts[0] + elapsed_file_ms
        end = int(np.searchsorted(self._pace, limit, side="right"))
        return min(end, self._pos + cfg.max_rows_per_read)

    async def read(self) -> Batch:
        if self._pos >= len(self._ts):
            if not self.config.loop:
                return Batch.empty()
            self._pos = 0
            self._lap += 1
        end = max(self._pos, self._due())
        sl = slice(self._pos, end)
        self._pos = end
        ts = self._ts[sl] + self._lap * self._span
        if self.config.timestamps is TimestampMode.SHIFT:
            scale = 1.0 if self.config.speed == 0 else 1.0 / self.config.speed
            ts = self._t0_wall + ((ts - self._ts[0]) * scale).astype(np.int64)
        n = end - sl.start
        q = np.full(n, int(Quality.ESTIMATED) if self.config.timestamps is TimestampMode.SHIFT and self.config.speed != 1 else 0, np.uint32)
        q[self._flag[sl]] |= int(Quality.DEVICE_FLAGGED)
        return Batch(np.zeros(n, np.int32), ts.astype(np.int64), self._val[sl].copy(), q)

    async def close(self) -> None:
        """Nothing to release; the parsed file stays cached for the next open()."""
