"""The last hour of every metric, for the page's charts: a fixed-size ring per series in memory.

Sampled from the latest values every ``step`` seconds (a sample only when the series has a newer
reading), so memory is ``series x slots x 12`` bytes whatever the poll rate, and nothing is re-read
from the outbox.
"""

from __future__ import annotations

import numpy as np

from ..series import LatestValues


class History:
    def __init__(self, n_series: int, *, slots: int):
        self.slots = slots
        self.ts = np.zeros((n_series, slots), np.int64)
        self.value = np.zeros((n_series, slots), np.float32)
        self.count = np.zeros(n_series, np.int64)  # samples written, ever (head = count % slots)
        self._seen = np.zeros(n_series, np.int64)  # reading ts last sampled

    def sample(self, latest: LatestValues) -> int:
        """Record every series whose latest reading is newer than its last sample; returns how many."""
        fresh = np.nonzero((latest.ts > self._seen) & ~np.isnan(latest.value))[0]
        if len(fresh):
            head = self.count[fresh] % self.slots
            self.ts[fresh, head] = latest.ts[fresh]
            self.value[fresh, head] = latest.value[fresh]
            self._seen[fresh] = latest.ts[fresh]
            self.count[fresh] += 1
        return len(fresh)

    def series(self, sid: int, since_ms: int = 0) -> tuple[list[int], list[float]]:
        """(ts, value) of one series, oldest first, newer than ``since_ms``."""
        n = int(min(self.count[sid], self.slots))
        start = int(self.count[sid] - n)
        idx = [(start + i) % self.slots for i in range(n)]
        ts, vals = self.ts[sid, idx], self.value[sid, idx]
        keep = ts > since_ms
        return ts[keep].tolist(), [round(float(v), 6) for v in vals[keep]]
