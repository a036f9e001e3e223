"""Streaming anomaly detector: O(1) state per series (9 floats), no training phase.

Each reading's surprise is its distance from a robust exponentially weighted baseline (EW mean
and EW mean absolute deviation, updated with the value clipped to a few deviations so a spike does
not drag the baseline; the scale never drops below a fraction of a slow, unclipped deviation),
taken as ``log1p(|x - mean| / scale)``. The detector reports *record* surprise only: a reading
scores when its surprise beats a slowly decaying memory of the series' largest past surprise, and
the score is how far it beats it, ``ratio = surprise / (record + EPS)`` squashed to
``ratio / (SQUASH + ratio)`` in [0, 1). Scores are therefore relative to each series' own history
(comparable across series with one threshold), and one event fires once at its onset rather than
for every reading until the baseline has adapted. During the first ``warmup`` readings nothing
scores; the record memory learns from the second half of the warm-up.

An event starts when the score reaches ``threshold`` and ends after ``quiet`` readings whose
instantaneous ratio (against the record) squashes below ``release``.
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel

D_N, D_MEAN, D_DEV, D_LDEV, D_PEAK, D_ACTIVE, D_QUIET, D_EVPEAK, D_RAW = range(9)
DET_COLS = 9
FLOOR = 0.1  # the scale never drops below this fraction of the slow deviation
LSLOW = 0.1  # the slow deviation adapts this much slower than the baseline
CLIP = 4.0  # baseline updates see the value clipped to mean +- CLIP deviations
EPS = 0.3  # added to the record so tiny records in quiet series do not score high
SQUASH = 1.25  # ratio at which the score is 0.5: a record beaten by a quarter
PEAK_FROM = 0.5  # fraction of the warm-up after which the record memory learns
ANOMALY = int(Quality.ANOMALY)


def new_state(n: int) -> np.ndarray:
    return np.zeros((n, DET_COLS), np.float64)


@kernel
def surprise(x, st, s, alpha, warmup, decay):
    """Update series ``s`` with value ``x``; returns the reported score (0 during warm-up)."""
    n = st[s, D_N]
    if n == 0.0:
        st[s, D_MEAN] = x
        st[s, D_DEV] = 0.0
        st[s, D_LDEV] = 0.0
        st[s, D_N] = 1.0
        return 0.0
    mean = st[s, D_MEAN]
    dev = st[s, D_DEV]
    ldev = st[s, D_LDEV]
    d = x - mean
    ad = abs(d)
    r = math.log1p(ad / (dev + FLOOR * ldev + 1e-9 * (abs(mean) + 1.0)))
    # learn: running averages while young, so no training phase is needed
    a = 1.0 / (n + 1.0)
    al = a
    if a < alpha:
        a = alpha
    if al < alpha * LSLOW:
        al = alpha * LSLOW
    lim = CLIP * dev if n > warmup else np.inf
    dc = d if d < lim else lim
    dc = dc if dc > -lim else -lim
    st[s, D_MEAN] = mean + a * dc
    st[s, D_DEV] = dev + a * ((ad if ad < lim else lim) - dev)
    st[s, D_LDEV] = ldev + al * (ad - ldev)
    st[s, D_N] = n + 1.0
    peak = st[s, D_PEAK]
    ratio = r / (peak + EPS)
    st[s, D_RAW] = ratio / (SQUASH + ratio)
    p = peak * decay
    if n < warmup:
        if n >= PEAK_FROM * warmup:
            st[s, D_PEAK] = r if r > p else p
        return 0.0
    st[s, D_PEAK] = r if r > p else p
    return st[s, D_RAW] if r > peak else 0.0


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
            # the reported score is 0 between records; judge the end on the instantaneous surprise
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
