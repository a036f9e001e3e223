"""Local time for the kernels: a time zone as a short table of UTC offsets (no tz database in numba).

``tz_table(zone, lo_ms, hi_ms)`` gives ``(tz_tr, tz_off)``: the UTC instants (epoch ms) where the
offset changes between ``lo_ms`` and ``hi_ms`` and the offsets in force around them, so
``kernels.detect.local_offset`` finds the offset of any instant by binary search. DST transitions
are found to the second; a zone whose rules change more often than every six hours would be missed
(none does). :class:`ZoneTable` keeps one table per week and reuses it across batches.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

STEP_MS = 6 * 3_600_000


def _offset_ms(zone: ZoneInfo, t_ms: int) -> int:
    off = dt.datetime.fromtimestamp(t_ms / 1000.0, dt.UTC).astimezone(zone).utcoffset()
    return int(off.total_seconds() * 1000) if off is not None else 0


def tz_table(zone: ZoneInfo | str, lo_ms: int, hi_ms: int) -> tuple[np.ndarray, np.ndarray]:
    z = ZoneInfo(zone) if isinstance(zone, str) else zone
    tr: list[int] = []
    offs = [_offset_ms(z, lo_ms)]
    t = lo_ms
    while t < hi_ms:
        nxt = min(t + STEP_MS, hi_ms)
        o = _offset_ms(z, nxt)
        if o != offs[-1]:
            a, b = t, nxt  # offset at a is offs[-1], at b is o: bisect to the second
            while b - a > 1000:
                mid = (a + b) // 2
                if _offset_ms(z, mid) == offs[-1]:
                    a = mid
                else:
                    b = mid
            tr.append(b - b % 1000 if _offset_ms(z, b - b % 1000) == o else b)
            offs.append(o)
        t = nxt
    return np.array(tr, np.int64), np.array(offs, np.int64)


class ZoneTable:
    """Offsets of one zone for the batches' times, recomputed a week at a time."""

    SPAN_MS = 7 * 86_400_000

    def __init__(self, zone: str):
        self.zone = ZoneInfo(zone)
        self.lo = self.hi = 0
        self.table = tz_table(self.zone, 0, 0)

    def covering(self, lo_ms: int, hi_ms: int) -> tuple[np.ndarray, np.ndarray]:
        if lo_ms < self.lo or hi_ms > self.hi:
            self.lo, self.hi = lo_ms - 86_400_000, max(hi_ms, lo_ms + self.SPAN_MS)
            self.table = tz_table(self.zone, self.lo, self.hi)
        return self.table
