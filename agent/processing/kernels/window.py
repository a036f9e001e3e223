"""Windowed aggregation aligned to UTC wall-clock boundaries.

Per series one open window: count, min, max, mean and std (Welford, population), first, last,
time-weighted mean (each value holds until the next sample, for at most ``gap_ms``), gaps (intervals
longer than ``gap_ms``; nothing is interpolated), the sum of counter deltas, readings rejected
(non-finite or carrying a rejected quality bit) and late readings (for an already closed window).
A window closes when a reading for a later window arrives or when ``window_flush`` passes its end.
"""

from __future__ import annotations

import math

import numpy as np

from ..jit import kernel

# int state columns
I_START, I_COUNT, I_GAPS, I_LAST_TS, I_REJ, I_LATE, I_INORDER = range(7)
WIN_I = 7
# float state columns
F_MIN, F_MAX, F_MEAN, F_M2, F_FIRST, F_LAST, F_TWA, F_DUR, F_DELTA = range(9)
WIN_F = 9
# output columns: ints (series, start, count, gaps, rejected, late) floats (min max mean twa std first last delta)
OUT_I = 6
OUT_F = 8
NO_TS = -(2**63)  # no reading yet


def new_state(n: int) -> tuple[np.ndarray, np.ndarray]:
    si = np.zeros((n, WIN_I), np.int64)
    si[:, I_START] = -1
    si[:, I_LAST_TS] = NO_TS
    return si, np.zeros((n, WIN_F), np.float64)


@kernel
def _close(s, width, gap_ms, si, sf, out_i, out_f, k):
    start = si[s, I_START]
    end = start + width
    cnt = si[s, I_COUNT]
    out_i[k, 0] = s
    out_i[k, 1] = start
    out_i[k, 2] = cnt
    out_i[k, 3] = si[s, I_GAPS]
    out_i[k, 4] = si[s, I_REJ]
    out_i[k, 5] = si[s, I_LATE]
    if cnt > 0:
        out_f[k, 0] = sf[s, F_MIN]
        out_f[k, 1] = sf[s, F_MAX]
        out_f[k, 2] = sf[s, F_MEAN]
        dur = sf[s, F_DUR]
        twa = sf[s, F_TWA]
        if si[s, I_INORDER] > 0:
            hold = end - si[s, I_LAST_TS]
            if hold > gap_ms:
                hold = gap_ms
            if hold > 0:
                twa += sf[s, F_LAST] * hold
                dur += hold
        out_f[k, 3] = twa / dur if dur > 0 else sf[s, F_LAST]
        out_f[k, 4] = math.sqrt(sf[s, F_M2] / cnt) if sf[s, F_M2] > 0 else 0.0
        out_f[k, 5] = sf[s, F_FIRST]
        out_f[k, 6] = sf[s, F_LAST]
    else:
        for j in range(7):
            out_f[k, j] = np.nan
    out_f[k, 7] = sf[s, F_DELTA]
    si[s, I_START] = -1


@kernel
def _open(s, start, si, sf):
    si[s, I_START] = start
    si[s, I_COUNT] = 0
    si[s, I_GAPS] = 0
    si[s, I_REJ] = 0
    si[s, I_LATE] = 0
    si[s, I_INORDER] = 0
    sf[s, F_MIN] = np.inf
    sf[s, F_MAX] = -np.inf
    sf[s, F_MEAN] = 0.0
    sf[s, F_M2] = 0.0
    sf[s, F_FIRST] = np.nan
    sf[s, F_LAST] = np.nan
    sf[s, F_TWA] = 0.0
    sf[s, F_DUR] = 0.0
    sf[s, F_DELTA] = 0.0


@kernel
def window_step(series, ts, value, quality, delta, reject_mask, width, gap_ms, si, sf, out_i, out_f):
    """Feed a batch; closed windows are written to ``out_i``/``out_f`` (len(batch) rows). Returns how many."""
    k = 0
    for r in range(series.shape[0]):
        s = series[r]
        t = ts[r]
        ws = (t // width) * width
        if si[s, I_START] == -1:
            _open(s, ws, si, sf)
        elif ws > si[s, I_START]:
            _close(s, width, gap_ms[s], si, sf, out_i, out_f, k)
            k += 1
            _open(s, ws, si, sf)
        elif ws < si[s, I_START]:
            si[s, I_LATE] += 1
            continue
        v = value[r]
        if not math.isfinite(v) or (quality[r] & reject_mask) != 0:
            si[s, I_REJ] += 1
            continue
        cnt = si[s, I_COUNT] + 1
        si[s, I_COUNT] = cnt
        if v < sf[s, F_MIN]:
            sf[s, F_MIN] = v
        if v > sf[s, F_MAX]:
            sf[s, F_MAX] = v
        mean = sf[s, F_MEAN]
        d = v - mean
        sf[s, F_MEAN] = mean + (v / cnt - mean / cnt)  # no overflow near the float limits
        sf[s, F_M2] += d * (v - sf[s, F_MEAN])
        dl = delta[r]
        if math.isfinite(dl):
            sf[s, F_DELTA] += dl
        last_ts = si[s, I_LAST_TS]
        if t >= last_ts:  # in order: time-weighted mean, gaps, first/last
            g = gap_ms[s]
            if si[s, I_INORDER] > 0:
                dt = t - last_ts
                hold = dt if dt < g else g
                sf[s, F_TWA] += sf[s, F_LAST] * hold
                sf[s, F_DUR] += hold
                if dt > g:
                    si[s, I_GAPS] += 1
            else:
                if last_ts != NO_TS and t - last_ts > g:
                    si[s, I_GAPS] += 1
                sf[s, F_FIRST] = v
            si[s, I_INORDER] += 1
            sf[s, F_LAST] = v
            si[s, I_LAST_TS] = t
    return k


@kernel
def window_flush(cutoff, width, gap_ms, si, sf, out_i, out_f):
    """Close every window whose end is <= ``cutoff``. ``out_*`` need one row per series."""
    k = 0
    for s in range(si.shape[0]):
        st = si[s, I_START]
        if st != -1 and st + width <= cutoff:
            _close(s, width, gap_ms[s], si, sf, out_i, out_f, k)
            k += 1
    return k
