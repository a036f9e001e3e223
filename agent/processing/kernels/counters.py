"""Counter deltas (rollover and reset detection) and power -> energy trapezoid integration.

Per row the kernel writes ``delta``: for counter series the increase since the previous reading in
register units; for integrated series the energy since the previous reading in (power unit x hours);
NaN where there is none (first reading, non-finite value, out-of-order row, gap, rejected jump or
backwards step).

A counter that goes backwards without wrapping is a glitch (a read of 0, a torn register) until the
new level is confirmed: the reading is flagged IMPLAUSIBLE, gives no delta and the next good reading
continues from the old total. ``ACCEPT_AFTER`` backwards readings in a row, each at or above the one
before, are a new baseline (a meter swap or reset): the last is taken as the level, without a delta,
and counted as a reset. Counters the device restarts on purpose (``MODE_RESTARTS``, a session's
energy) count a backwards step as a restart from zero instead.

A forward step larger than the meter can physically make since the counter last rose
(``max_rise`` x elapsed time, capped by ``max_step``) is held as a glitch the same way: flagged
SPIKE, no delta, the total continues from the old level. Only ``ACCEPT_AFTER`` such readings in a
row that agree with each other (each within the physical bound of the one before) become the new
level, counted as a reset and never booked.

``since[r]`` is when the energy of ``delta[r]`` accrued from: the time the counter last rose (for a
counter that sat still and then caught up, the start of that stretch), else the previous reading.
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel

MODE_NONE, MODE_COUNTER, MODE_INTEGRATE, MODE_RESTARTS = 0, 1, 2, 3
C_LAST, C_HAVE, C_BACK, C_HELD = 0, 1, 2, 3  # float state: last value, 1.0 once seen, last backwards, last held jump
# int state: last ts, resets, rollovers, rejected, jump run, backwards run, when the counter last rose, last held ts
C_TS, C_RESETS, C_ROLLOVERS, C_REJECTED, C_RUN, C_BACK_RUN, C_MOVE_TS, C_HELD_TS = range(8)
ACCEPT_AFTER = 3  # a jump (or a backwards level) seen this many times in a row is a new level, not a glitch
SPIKE = int(Quality.SPIKE)
IMPLAUSIBLE = int(Quality.IMPLAUSIBLE)
MS_PER_HOUR = 3_600_000.0


def new_state(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 8), np.int64), np.zeros((n, 4), np.float64)


@kernel
def counter_step(series, ts, value, quality, mode, rollover, max_step, max_rise, gap_ms, ci, cf, delta, since):
    """``max_rise``: the most a counter can rise per millisecond (register units; inf: unbounded)."""
    for r in range(series.shape[0]):
        s = series[r]
        delta[r] = np.nan
        since[r] = ts[r]
        m = mode[s]
        if m == MODE_NONE:
            continue
        v = value[r]
        t = ts[r]
        if not math.isfinite(v):
            continue
        if cf[s, C_HAVE] == 0.0:
            cf[s, C_HAVE] = 1.0
            cf[s, C_LAST] = v
            ci[s, C_TS] = t
            ci[s, C_MOVE_TS] = t
            continue
        if t <= ci[s, C_TS]:
            continue  # duplicate or out of order: the running state only moves forward
        prev = cf[s, C_LAST]
        if m == MODE_COUNTER or m == MODE_RESTARTS:
            d = v - prev
            if d < 0.0:
                ro = rollover[s]
                if ro > 0.0 and prev - v > 0.5 * ro:
                    d += ro
                    ci[s, C_ROLLOVERS] += 1
                elif m == MODE_RESTARTS:  # a new session: count from zero
                    d = v if v >= 0.0 else 0.0
                    ci[s, C_RESETS] += 1
                else:  # backwards: a glitch until the new level is confirmed
                    quality[r] |= IMPLAUSIBLE
                    ci[s, C_REJECTED] += 1
                    if ci[s, C_BACK_RUN] > 0 and v >= cf[s, C_BACK]:
                        ci[s, C_BACK_RUN] += 1
                    else:
                        ci[s, C_BACK_RUN] = 1
                    cf[s, C_BACK] = v
                    ci[s, C_RUN] = 0
                    if ci[s, C_BACK_RUN] >= ACCEPT_AFTER:  # a meter swap or reset: the new baseline
                        ci[s, C_BACK_RUN] = 0
                        ci[s, C_RESETS] += 1
                        cf[s, C_LAST] = v
                        ci[s, C_TS] = t
                        ci[s, C_MOVE_TS] = t
                    continue
            ci[s, C_BACK_RUN] = 0
            bound = max_rise[s] * (t - ci[s, C_MOVE_TS])
            if max_step[s] < bound:
                bound = max_step[s]
            if d > bound:  # more than the meter can deliver: held until confirmed
                ci[s, C_REJECTED] += 1
                quality[r] |= SPIKE
                held = cf[s, C_HELD]
                step = v - held
                el = t - ci[s, C_HELD_TS]
                agree = step >= 0.0 and el > 0 and step <= max_rise[s] * el and step <= max_step[s]
                if ci[s, C_RUN] > 0 and agree:
                    ci[s, C_RUN] += 1
                else:
                    ci[s, C_RUN] = 1
                cf[s, C_HELD] = v
                ci[s, C_HELD_TS] = t
                if ci[s, C_RUN] >= ACCEPT_AFTER:  # the jump persists: take the new level, no delta
                    ci[s, C_RUN] = 0
                    ci[s, C_RESETS] += 1
                    cf[s, C_LAST] = v
                    ci[s, C_TS] = t
                    ci[s, C_MOVE_TS] = t
                continue
            ci[s, C_RUN] = 0
            delta[r] = d
            if d > 0.0:
                since[r] = ci[s, C_MOVE_TS]
                ci[s, C_MOVE_TS] = t
            else:
                since[r] = ci[s, C_TS]
        else:
            dt = t - ci[s, C_TS]
            since[r] = ci[s, C_TS]
            if dt <= gap_ms[s]:
                delta[r] = 0.5 * (prev + v) * (dt / MS_PER_HOUR)
        cf[s, C_LAST] = v
        ci[s, C_TS] = t
