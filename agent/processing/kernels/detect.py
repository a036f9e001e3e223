"""Streaming anomaly detector: O(1) state per series, no training phase.

For each reading it measures how surprising the value is against two robust exponentially
weighted baselines: the level (EW mean and EW mean absolute deviation, updated with the value
clipped to a few deviations so that a spike does not drag the baseline) and the change (the
reading's step against the EW mean absolute step). The larger of the two z-like ratios is squashed
into a score in [0, 1). Only *new* surprise is reported: the score is passed on when it exceeds a
slowly decaying running maximum of recent scores, so one event fires once at its onset instead of
for every reading until the baseline has adapted (the way an engineer reads an alarm list).

An event starts when the reported score reaches ``threshold`` and ends after ``quiet`` readings
below ``release``.
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel

D_N, D_MEAN, D_DEV, D_LAST, D_STEP, D_PEAK, D_ACTIVE, D_QUIET, D_EVPEAK, D_LDEV, D_LSTEP, D_RM, D_RV, D_RAW = range(14)
DET_COLS = 14
FLOOR = 0.1  # short-term scales never drop below this fraction of the long-term ones
ANOMALY = int(Quality.ANOMALY)
CLIP = 4.0  # level updates see the value clipped to mean +- CLIP deviations
SCALE = 3.0  # normalised surprise at which the score is 0.5
RSLOW = 0.25  # the surprise history adapts this much slower than the baselines


def new_state(n: int) -> np.ndarray:
    return np.zeros((n, DET_COLS), np.float64)


@kernel
def surprise(x, st, s, alpha, warmup, decay):
    """Update series ``s`` with value ``x``; returns the reported score (0 during warm-up)."""
    n = st[s, D_N]
    if n == 0.0:
        st[s, D_MEAN] = x
        st[s, D_LAST] = x
        st[s, D_DEV] = 0.0
        st[s, D_LDEV] = 0.0
        st[s, D_STEP] = 0.0
        st[s, D_N] = 1.0
        return 0.0
    mean = st[s, D_MEAN]
    dev = st[s, D_DEV]
    step = abs(x - st[s, D_LAST])
    tiny = 1e-9 * (abs(mean) + 1.0)
    zl = abs(x - mean) / (dev + st[s, D_LDEV] * FLOOR + tiny)
    zs = step / (st[s, D_STEP] + st[s, D_LSTEP] * FLOOR + tiny)
    z = zl if zl > zs else zs
    # normalise the surprise against this series' own history of surprise (like HTM's likelihood)
    r = math.log1p(z)
    rm = st[s, D_RM]
    rv = st[s, D_RV]
    zz = (r - rm) / math.sqrt(rv + 1e-6)
    raw = zz / (zz + SCALE) if zz > 0.0 else 0.0
    st[s, D_RAW] = raw
    b = 1.0 / (n + 1.0)
    if b < alpha * RSLOW:
        b = alpha * RSLOW
    dr = r - rm
    st[s, D_RM] = rm + b * dr
    st[s, D_RV] = (1.0 - b) * (rv + b * dr * dr)
    # learn: faster while young so no training phase is needed
    a = 1.0 / (n + 1.0)
    if a < alpha:
        a = alpha
    lim = CLIP * dev if n > warmup else np.inf
    d = x - mean
    dc = d if d < lim else lim
    dc = dc if dc > -lim else -lim
    st[s, D_MEAN] = mean + a * dc
    ad = abs(d)
    st[s, D_DEV] = dev + a * ((ad if ad < lim else lim) - dev)
    st[s, D_LDEV] = st[s, D_LDEV] + 0.1 * a * (ad - st[s, D_LDEV])
    sl = CLIP * st[s, D_STEP] if n > warmup else np.inf
    st[s, D_STEP] = st[s, D_STEP] + a * ((step if step < sl else sl) - st[s, D_STEP])
    st[s, D_LSTEP] = st[s, D_LSTEP] + 0.1 * a * (step - st[s, D_LSTEP])
    st[s, D_LAST] = x
    st[s, D_N] = n + 1.0
    if n < warmup:
        return 0.0
    peak = st[s, D_PEAK]
    out = raw if raw > peak else 0.0
    p = peak * decay
    st[s, D_PEAK] = raw if raw > p else p
    return out


@kernel
def detect_step(series, value, quality, enabled, st, alpha, warmup, decay, threshold, release, quiet, score, event):
    """Score a batch; sets ANOMALY on rows scoring >= threshold; event[r] = 1 start, 2 end, else 0."""
    for r in range(series.shape[0]):
        s = series[r]
        score[r] = 0.0
        event[r] = 0
        x = value[r]
        if not enabled[s] or not math.isfinite(x):
            continue
        sc = surprise(x, st, s, alpha, warmup, decay)
        score[r] = sc
        if sc >= threshold:
            quality[r] |= ANOMALY
            st[s, D_QUIET] = 0.0
            if st[s, D_ACTIVE] == 0.0:
                st[s, D_ACTIVE] = 1.0
                st[s, D_EVPEAK] = sc
                event[r] = 1
            elif sc > st[s, D_EVPEAK]:
                st[s, D_EVPEAK] = sc
        elif st[s, D_ACTIVE] != 0.0:
            # the reported score is 0 between new maxima; judge the end on the raw surprise
            if st[s, D_RAW] < release:
                st[s, D_QUIET] += 1.0
                if st[s, D_QUIET] >= quiet:
                    st[s, D_ACTIVE] = 0.0
                    event[r] = 2
            else:
                st[s, D_QUIET] = 0.0


def score_series(values: np.ndarray, *, alpha: float, warmup: int, decay: float) -> np.ndarray:
    """Scores of one series from scratch (for evaluation)."""
    n = values.shape[0]
    series = np.zeros(n, np.int32)
    q = np.zeros(n, np.uint32)
    st = new_state(1)
    score = np.empty(n)
    event = np.zeros(n, np.int8)
    detect_step(series, values, q, np.ones(1, np.bool_), st, alpha, float(warmup), decay, 2.0, 0.5, 10.0, score, event)
    return score
