"""Per-series quality checks: physical range, stuck value, rate of change, stale on arrival.

Sets ``agent.model.Quality`` bits in place on the batch's quality column. Non-finite values are
out of range, except the stale gap markers the scheduler emits (no value at all: only ``stale``).
Config arrays per series: ``lo``/``hi`` (+-inf = no bound), ``stuck_n`` (0 = off), ``stuck_tol``,
``max_rate`` per second (inf = off), ``stale_ms`` (0 = off).
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel

OUT_OF_RANGE = int(Quality.OUT_OF_RANGE)
STUCK = int(Quality.STUCK)
RATE = int(Quality.RATE_OF_CHANGE)
STALE = int(Quality.STALE)
Q_REF, Q_LAST = 0, 1  # float state: stuck reference value, last value
Q_RUN, Q_TS = 0, 1  # int state: samples equal to the reference, ts of last value (0 = none)
NO_TS = -(2**63)


def new_state(n: int) -> tuple[np.ndarray, np.ndarray]:
    qi = np.zeros((n, 2), np.int64)
    qi[:, Q_TS] = NO_TS
    return qi, np.full((n, 2), np.nan)


@kernel
def quality_step(series, ts, value, quality, now_ms, lo, hi, stuck_n, stuck_tol, max_rate, stale_ms, qi, qf):
    for r in range(series.shape[0]):
        s = series[r]
        v = value[r]
        t = ts[r]
        q = quality[r]
        if stale_ms[s] > 0 and now_ms - t > stale_ms[s]:
            q |= STALE
        if not math.isfinite(v):
            # a gap marker (no value because the device went stale) is stale, not out of range
            quality[r] = q if quality[r] & STALE else q | OUT_OF_RANGE
            continue
        if v < lo[s] or v > hi[s]:
            q |= OUT_OF_RANGE
        if t > qi[s, Q_TS]:
            if stuck_n[s] > 0:
                if qi[s, Q_RUN] > 0 and abs(v - qf[s, Q_REF]) <= stuck_tol[s]:
                    qi[s, Q_RUN] += 1
                else:
                    qf[s, Q_REF] = v
                    qi[s, Q_RUN] = 1
                if qi[s, Q_RUN] >= stuck_n[s]:
                    q |= STUCK
            if qi[s, Q_TS] != NO_TS:
                rate = abs(v - qf[s, Q_LAST]) * 1000.0 / (t - qi[s, Q_TS])
                if rate > max_rate[s]:
                    q |= RATE
            qf[s, Q_LAST] = v
            qi[s, Q_TS] = t
        quality[r] = q
