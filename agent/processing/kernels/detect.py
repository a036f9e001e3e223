"""Streaming anomaly detector: fixed state per series (13 floats), no training phase, causal.

Three parts, each cheap and of constant memory:

1. **Surprise.** A robust exponentially weighted baseline (EW mean and EW mean absolute deviation,
   updated with the value clipped to a few deviations so a spike does not drag it; the scale never
   drops below a fraction of a slow, unclipped deviation). A reading's raw surprise is
   ``1 - exp(-|x - mean| / (RAW_SCALE * scale))`` in [0, 1).
2. **Calibration** (the "anomaly likelihood" idea). A short average of raw surprise is compared
   with its own long-run distribution (running mean and variance over ``history`` readings); the
   Gaussian tail probability of that average becomes a log-scaled score in [0, 1]:
   ``score = log(1 - likelihood) / log(1e-10)``, so 0.5 is a tail probability of 1e-5 whatever the
   series' units, noise or scale. One threshold therefore serves every series.
3. **Never seen before.** A value beyond the range seen so far by more than ``range_margin`` of
   that range (and by at least the metric's significant change), and at least ``RANGE_MIN_DEV``
   deviations from the baseline (so slow drift to new highs does not count), scores 1.

A reading closer to the baseline than the metric's significant change (the larger of an absolute
``significant``, e.g. its resolution or noise floor, and ``significant_rel`` x the baseline, both
declared by the driver; 0 when unknown) scores 0. Readings carrying any of the ``skip``
quality bits (out of range, implausible ...) neither score nor teach the detector.

An event starts when the score reaches ``threshold``; while it lasts no new event can start (the
reported detection score is 0), and it ends after ``quiet`` readings scoring below ``release``, so
a second anomaly is caught as soon as the first has calmed down. Readings scoring at or above the
threshold carry the ``anomaly`` quality bit. Nothing scores during the first ``warmup`` readings.
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel

(D_N, D_MEAN, D_DEV, D_LDEV, D_AVG, D_MU, D_VAR, D_LO, D_HI, D_ACTIVE, D_QUIET, D_EVPEAK,
 D_SCORE) = range(13)
DET_COLS = 13
# parameter vector (see params())
P_ALPHA, P_WARMUP, P_THRESHOLD, P_RELEASE, P_QUIET, P_HISTORY, P_RANGE, P_SHORT, P_SKIP = range(9)
FLOOR = 0.1  # the scale never drops below this fraction of the slow deviation
LSLOW = 0.1  # the slow deviation adapts this much slower than the baseline
CLIP = 4.0  # baseline updates see the value clipped to mean +- CLIP deviations
RAW_SCALE = 4.0  # deviations at which raw surprise reaches 1 - 1/e
RANGE_MIN_DEV = 2.0  # a new range must also be this many deviations from the baseline (not mere drift)
TAIL_FLOOR = 1e-10  # tail probability that maps to score 1
LOG_TAIL_FLOOR = math.log(TAIL_FLOOR)
ANOMALY = int(Quality.ANOMALY)


def new_state(n: int) -> np.ndarray:
    return np.zeros((n, DET_COLS), np.float64)


def params(*, alpha: float, warmup: int, threshold: float, release: float, quiet: int, history: int,
           range_margin: float, short: float = 0.05, skip: int = 0) -> np.ndarray:
    """The kernel's parameter vector; ``range_margin < 0`` switches the range test off; readings with a
    quality bit in ``skip`` are ignored."""
    return np.array([alpha, warmup, threshold, release, quiet, history, range_margin, short, skip], np.float64)


@kernel
def surprise(x, st, s, prm, sig, sig_rel):
    """Update series ``s`` with value ``x``; returns the calibrated score in [0, 1] (0 in warm-up)."""
    n = st[s, D_N]
    if n == 0.0:
        st[s, D_MEAN] = x
        st[s, D_LO] = x
        st[s, D_HI] = x
        st[s, D_N] = 1.0
        return 0.0
    alpha = prm[P_ALPHA]
    mean = st[s, D_MEAN]
    dev = st[s, D_DEV]
    ldev = st[s, D_LDEV]
    d = x - mean
    ad = abs(d)
    if sig < sig_rel * abs(mean):
        sig = sig_rel * abs(mean)
    scale = dev + FLOOR * ldev + 1e-9 * (abs(mean) + 1.0)
    raw = 1.0 - math.exp(-ad / (RAW_SCALE * scale))
    # learn the baseline: running averages while young, so no training phase is needed
    a = 1.0 / (n + 1.0)
    al = a
    if a < alpha:
        a = alpha
    if al < alpha * LSLOW:
        al = alpha * LSLOW
    lim = CLIP * dev if n > prm[P_WARMUP] else np.inf
    dc = d if d < lim else lim
    dc = dc if dc > -lim else -lim
    st[s, D_MEAN] = mean + a * dc
    st[s, D_DEV] = dev + a * ((ad if ad < lim else lim) - dev)
    st[s, D_LDEV] = ldev + al * (ad - ldev)
    st[s, D_N] = n + 1.0
    # calibrate: short average of raw surprise against its own long-run distribution
    avg = st[s, D_AVG] + prm[P_SHORT] * (raw - st[s, D_AVG])
    st[s, D_AVG] = avg
    b = 1.0 / n
    if b < 1.0 / prm[P_HISTORY]:
        b = 1.0 / prm[P_HISTORY]
    mu = st[s, D_MU]
    dm = avg - mu
    st[s, D_MU] = mu + b * dm
    st[s, D_VAR] = (1.0 - b) * (st[s, D_VAR] + b * dm * dm)
    z = (avg - mu) / (math.sqrt(st[s, D_VAR]) + 1e-6)
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    score = math.log(tail + 1e-10 * (1.0 - tail) + 1e-300) / LOG_TAIL_FLOOR
    score = 0.0 if score < 0.0 else (1.0 if score > 1.0 else score)
    # never seen this range before
    lo = st[s, D_LO]
    hi = st[s, D_HI]
    margin = prm[P_RANGE] * (hi - lo)
    if margin < sig:
        margin = sig
    if prm[P_RANGE] >= 0.0 and (x > hi + margin or x < lo - margin) and ad > RANGE_MIN_DEV * scale:
        score = 1.0
    if x > hi:
        st[s, D_HI] = x
    if x < lo:
        st[s, D_LO] = x
    if n < prm[P_WARMUP] or ad < sig:
        return 0.0
    return score


@kernel
def detect_step(series, value, quality, enabled, significant, significant_rel, st, prm, score, event):
    """Score a batch. ``score[r]`` is the detection score (0 while an event is active); rows scoring
    >= threshold get the ANOMALY bit; ``event[r]`` = 1 start, 2 end, else 0. ``significant[s]`` is the
    smallest departure from the baseline that may score, ``significant_rel[s]`` the same as a fraction of the
    baseline."""
    threshold = prm[P_THRESHOLD]
    skip = np.uint32(prm[P_SKIP])
    for r in range(series.shape[0]):
        s = series[r]
        score[r] = 0.0
        event[r] = 0
        x = value[r]
        if not enabled[s] or not math.isfinite(x) or (quality[r] & skip) != 0:
            continue
        sc = surprise(x, st, s, prm, significant[s], significant_rel[s])
        st[s, D_SCORE] = sc
        if sc >= threshold:
            quality[r] |= ANOMALY
        if st[s, D_ACTIVE] == 0.0:
            score[r] = sc
            if sc >= threshold:
                st[s, D_ACTIVE] = 1.0
                st[s, D_QUIET] = 0.0
                st[s, D_EVPEAK] = sc
                event[r] = 1
            continue
        if sc > st[s, D_EVPEAK]:
            st[s, D_EVPEAK] = sc
        if sc < prm[P_RELEASE]:
            st[s, D_QUIET] += 1.0
            if st[s, D_QUIET] >= prm[P_QUIET]:
                st[s, D_ACTIVE] = 0.0
                event[r] = 2
        else:
            st[s, D_QUIET] = 0.0


def score_series(values: np.ndarray, prm: np.ndarray) -> np.ndarray:
    """Detection scores of one series from scratch (for evaluation)."""
    n = values.shape[0]
    series = np.zeros(n, np.int32)
    q = np.zeros(n, np.uint32)
    st = new_state(1)
    score = np.empty(n)
    event = np.zeros(n, np.int8)
    detect_step(series, np.ascontiguousarray(values, np.float64), q, np.ones(1, np.bool_), np.zeros(1), np.zeros(1), st, prm,
                score, event)
    return score
