"""Streaming anomaly detector: fixed state per series (DET_COLS floats; D_PATTERN with pattern novelty off),
no training phase, causal.

Seven parts and the record rule, each cheap and of constant memory; the first three see a value's size, the
others its shape, its time and its course (see flat_score, tod_score, step_score and kernels.novelty):

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
   deviations from the baseline (so slow drift to new highs does not count), scores 1. While the range is
   young (``RANGE_YOUNG`` readings) on a series whose deviation is over ``RANGE_NOISE`` of its range (its
   range is what its spread alone makes), a new extreme must be ``CLIP`` deviations out.

4. **Flat line.** A run of unchanged readings longer than twice any ordinary run, scored by ``p ** run``;
   a run that raised an event teaches half its length, so a hold that recurs is reported once.
5. **Time of day.** The present local hour's mean against the same hour of earlier days of its type, on a
   series whose learnt slots explain it.
6. **Step.** A reading's step from the one before against the usual step, calibrated like the surprise.
7. **Pattern novelty.** The last few block means against learnt prototypes (kernels.novelty.pattern_score).

**Record rule.** A reading whose size or time-of-day evidence is the highest the series has shown (not a
reading beyond its range) starts an event below the threshold too (kernels.novelty.record_start; reported at
the threshold).

**Change point** (part of the size score; kernels.novelty.change_score): a two-sided CUSUM of the deviation from the
baseline, stepped on block means of at least 5 minutes and only on a series whose block means move like noise around
a level (not a random walk, not smooth wander: there the baseline lags by the series' nature); a slow level shift the
baseline follows. Its alarm is held until a reading departs from the baseline by the significant change (below).

A reading closer to the baseline than the metric's significant change (the larger of an absolute
``significant``, e.g. its resolution or noise floor, and ``significant_rel`` x the baseline, both
declared by the driver; 0 when unknown) scores 0. Readings carrying any of the ``skip``
quality bits (out of range, implausible ...) neither score nor teach the detector.

An event starts when the score reaches ``threshold``; while it lasts no new event can start (the
reported detection score is 0), and it ends after ``quiet`` readings scoring below ``release``, and
not before ``min_event`` readings after its start (one disturbance, one start), so a second anomaly is
caught as soon as the first has calmed down. The ``anomaly`` quality bit marks a value anomalous in size on
its own: a size score at or above the threshold where a size anomaly begins (no event active), or a value
beyond the range seen (the range test fired). Nothing scores during the first ``warmup`` readings.
"""

from __future__ import annotations

import math

import numpy as np

from ...model import Quality
from ..jit import kernel
from .novelty import CHANGE_COLS, PAT_COLS, change_restart, change_score, pattern_score, record_start

(D_N, D_MEAN, D_DEV, D_LDEV, D_AVG, D_MU, D_VAR, D_LO, D_HI, D_ACTIVE, D_QUIET, D_EVPEAK,
 D_SCORE, D_PREV, D_LDIFF, D_PFLAT, D_RUN, D_MAXRUN, D_SLOT, D_VSUM, D_VN, D_TERR) = range(22)
TOD_BASE = 22  # then TOD_SLOTS x (mean, dev, visits): the time-of-day / day-of-week baseline
TOD_SLOTS = 48  # 24 local hours x (workday, weekend)
D_NAVG, D_NMU, D_NVAR = range(TOD_BASE + 3 * TOD_SLOTS, TOD_BASE + 3 * TOD_SLOTS + 3)  # the step signal
D_LAST = D_NVAR + 1  # the reading count at the last event start (an event lasts at least P_MIN_EVENT readings)
D_TN = D_LAST + 1  # readings the time-of-day gate's error has averaged
D_RECORD = D_TN + 1  # the highest evidence the series has shown (the record rule)
D_CHANGE = D_RECORD + 1  # then CHANGE_COLS: the change point's sums, block and gate
D_PATTERN = D_CHANGE + CHANGE_COLS  # then PAT_COLS: pattern novelty
DET_COLS = D_PATTERN + PAT_COLS
# event codes in ``event``: a start, by the signal that started it, or the end
EV_START, EV_END, EV_START_FLAT, EV_START_TOD, EV_START_STEP, EV_START_PATTERN = 1, 2, 3, 4, 5, 6
# parameter vector (see params())
P_ALPHA, P_WARMUP, P_THRESHOLD, P_RELEASE, P_QUIET, P_HISTORY, P_RANGE, P_SHORT, P_SKIP, P_FLAT, P_TOD, P_STEP, P_MIN_EVENT, P_YOUNG, P_PATTERN, P_CHANGE, P_RECORD = range(17)
FLOOR = 0.1  # the scale never drops below this fraction of the slow deviation
LSLOW = 0.1  # the slow deviation adapts this much slower than the baseline
CLIP = 4.0  # baseline updates see the value clipped to mean +- CLIP deviations
RAW_SCALE = 4.0  # deviations at which raw surprise reaches 1 - 1/e
FLAT_FRAC = 0.01  # a step smaller than this fraction of the usual step is "no change"
FLAT_MIN_RUN = 10  # a flat run must be this long, and longer than twice the longest ordinary one
FLAT_PMAX = 0.999  # the usual fraction of unchanged steps is taken as at most this
FLAT_TEACH = 0.5  # a flagged run teaches this fraction of its length as ordinary
MIN_EVENT = 30  # an event lasts at least this many readings: one disturbance, one start
TOD_MIN_VISITS = 6  # a slot scores once it has seen this many visits (days of its day type)
TOD_GATE = 0.5  # the baseline scores only on a series it explains: its error below this x the level's
TOD_FLOOR = 0.25  # the slot's scale never drops below this fraction of the series' slow deviation
TOD_ALPHA = 0.2  # slot statistics follow each visit's mean at this rate (about a week's memory)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
RANGE_MIN_DEV = 2.0  # a new range must also be this many deviations from the baseline (not mere drift)
RANGE_YOUNG = 500  # before this many readings (a new extreme of noise: chance 2 / (n + 1) > 0.4 %) ...
RANGE_NOISE = 0.1  # ... on a series whose deviation exceeds this fraction of its range, a new extreme must be CLIP deviations out
TAIL_FLOOR = 1e-10  # tail probability that maps to score 1
LOG_TAIL_FLOOR = math.log(TAIL_FLOOR)
ANOMALY = int(Quality.ANOMALY)


def new_state(n: int, prm: np.ndarray | None = None) -> np.ndarray:
    """State for ``n`` series; the pattern-novelty columns unless ``prm`` switches it off."""
    return np.zeros((n, DET_COLS if prm is None or prm[P_PATTERN] != 0.0 else D_PATTERN), np.float64)


def params(*, alpha: float, warmup: int, threshold: float, release: float, quiet: int, history: int,
           range_margin: float, short: float = 0.05, skip: int = 0, flat: bool = True, tod: bool = True,
           step: bool = True, min_event: int = MIN_EVENT, young: bool = True, pattern: bool = True, change: bool = True,
           record: bool = True) -> np.ndarray:
    """The kernel's parameter vector; ``range_margin < 0`` switches the range test off; readings with a
    quality bit in ``skip`` are ignored; ``flat`` / ``tod`` / ``step`` switch the flat-line, time-of-day
    and step signals, ``pattern`` / ``change`` / ``record`` pattern novelty, the change point and the record
    rule (kernels.novelty); an event lasts at least
    ``min_event`` readings; ``young`` holds the range test back on a noise-dominated series while its range is
    young."""
    return np.array([alpha, warmup, threshold, release, quiet, history, range_margin, short, skip,
                     1.0 if flat else 0.0, 1.0 if tod else 0.0, 1.0 if step else 0.0, min_event,
                     1.0 if young else 0.0, 1.0 if pattern else 0.0, 1.0 if change else 0.0, 1.0 if record else 0.0],
                    np.float64)


UTC = (np.zeros(0, np.int64), np.zeros(1, np.int64))  # time-zone table of UTC (see agent.processing.localtime)


@kernel
def local_offset(t, tz_tr, tz_off):
    """UTC offset (ms) in force at UTC epoch ms ``t``: ``tz_off[i]`` holds from ``tz_tr[i-1]`` to ``tz_tr[i]``."""
    lo = 0
    hi = tz_tr.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if tz_tr[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return tz_off[lo]


@kernel
def flat_score(x, st, s, prm, n):
    """Lost variability: the length of the present run of unchanged readings against the usual share of
    unchanged steps (tail probability ``p ** run``, log-scaled like the surprise score), scoring only
    a run longer than twice any ordinary run seen before. Updates the flat-line state."""
    dx = abs(x - st[s, D_PREV])
    st[s, D_PREV] = x
    ldiff = st[s, D_LDIFF]
    flat = dx <= FLAT_FRAC * ldiff
    b = 1.0 / n
    if b < prm[P_ALPHA] * LSLOW:
        b = prm[P_ALPHA] * LSLOW
    st[s, D_LDIFF] = ldiff + b * (dx - ldiff)
    run = st[s, D_RUN]
    if flat:
        run += 1.0
        st[s, D_RUN] = run
    else:
        # an ordinary run teaches its length; a flagged one half of it, so the same stretch again is no news
        # (a recurring daily hold fires once) while a longer one still is
        taught = run if st[s, D_ACTIVE] == 0.0 else FLAT_TEACH * run
        if taught > st[s, D_MAXRUN]:
            st[s, D_MAXRUN] = taught
        run = 0.0
        st[s, D_RUN] = 0.0
    pf = st[s, D_PFLAT]
    st[s, D_PFLAT] = pf + b * ((1.0 if flat else 0.0) - pf)
    if prm[P_FLAT] == 0.0 or run < FLAT_MIN_RUN or run <= 2.0 * st[s, D_MAXRUN]:
        return 0.0
    if pf > FLAT_PMAX:
        pf = FLAT_PMAX
    if pf < 1e-3:
        pf = 1e-3
    sc = run * math.log(pf) / LOG_TAIL_FLOOR
    return 1.0 if sc > 1.0 else sc


@kernel
def tod_score(x, t, st, s, prm, tz_tr, tz_off, scale, sig):
    """Time-of-day / day-of-week baseline: the mean of the readings so far in this local hour against
    what the same hour of the same day type (workday, weekend) has shown on earlier days (an EW mean
    and mean absolute deviation of each visit's mean). Log-scaled Gaussian tail like the surprise score.
    Updates the slot state; returns 0 until the slot has seen ``TOD_MIN_VISITS`` visits."""
    if prm[P_TOD] == 0.0:
        return 0.0
    local = t + local_offset(t, tz_tr, tz_off)
    day = local // DAY_MS
    hour = (local - day * DAY_MS) // HOUR_MS
    weekend = 1 if (day + 3) % 7 >= 5 else 0  # 1970-01-01 was a Thursday; Monday = 0
    slot = hour + 24 * weekend
    mark = float(day * 64 + slot + 1)  # a visit: one slot on one day
    if st[s, D_SLOT] != mark:
        if st[s, D_VN] > 0.0:
            old = int(st[s, D_SLOT]) % 64 - 1
            k = TOD_BASE + 3 * old
            vm = st[s, D_VSUM] / st[s, D_VN]
            visits = st[s, k + 2]
            if visits == 0.0:
                st[s, k] = vm
            else:
                a = 1.0 / (visits + 1.0)
                if a < TOD_ALPHA:
                    a = TOD_ALPHA
                st[s, k + 1] += a * (abs(vm - st[s, k]) - st[s, k + 1])
                st[s, k] += a * (vm - st[s, k])
            st[s, k + 2] = visits + 1.0
        st[s, D_SLOT] = mark
        st[s, D_VSUM] = 0.0
        st[s, D_VN] = 0.0
    st[s, D_VSUM] += x
    st[s, D_VN] += 1.0
    k = TOD_BASE + 3 * slot
    if st[s, k + 2] < TOD_MIN_VISITS:
        return 0.0
    # does the series follow its daily profile? The mean error of the learnt slots' means against the
    # level's deviation: a plain average from the first scoring reading on (then at least the slow rate),
    # so a series that follows its days is recognised as soon as its slots have learnt
    tn = st[s, D_TN] + 1.0
    st[s, D_TN] = tn
    b = 1.0 / tn
    if b < prm[P_ALPHA] * LSLOW:
        b = prm[P_ALPHA] * LSLOW
    st[s, D_TERR] += b * (abs(x - st[s, k]) - st[s, D_TERR])
    if st[s, D_TERR] > TOD_GATE * st[s, D_LDEV]:
        return 0.0
    diff = abs(st[s, D_VSUM] / st[s, D_VN] - st[s, k])
    if diff < sig:
        return 0.0
    visits = st[s, k + 2]
    z = diff / (1.25 * (st[s, k + 1] * (1.0 + 2.0 / visits) + scale))  # few visits: a wider scale
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    sc = math.log(tail + 1e-10 * (1.0 - tail) + 1e-300) / LOG_TAIL_FLOOR
    return 0.0 if sc < 0.0 else (1.0 if sc > 1.0 else sc)


@kernel
def step_score(dx, st, s, prm, step):
    """How the series moves: the surprise of a step ``dx`` against the usual step size ``step`` (the slow mean
    absolute step), ``1 - exp(-|dx| / (RAW_SCALE * step))``, calibrated like the size surprise (a short average
    against its own long-run distribution). It sees a series that starts to oscillate, jitter or move in a
    new way while its values stay within their usual size. Updates the step-signal state."""
    if prm[P_STEP] == 0.0:
        return 0.0
    raw = 1.0 - math.exp(-abs(dx) / (RAW_SCALE * step))
    avg = st[s, D_NAVG] + prm[P_SHORT] * (raw - st[s, D_NAVG])
    st[s, D_NAVG] = avg
    n = st[s, D_N]
    b = 1.0 / n
    if b < 1.0 / prm[P_HISTORY]:
        b = 1.0 / prm[P_HISTORY]
    mu = st[s, D_NMU]
    dm = avg - mu
    st[s, D_NMU] = mu + b * dm
    st[s, D_NVAR] = (1.0 - b) * (st[s, D_NVAR] + b * dm * dm)
    z = (avg - mu) / (math.sqrt(st[s, D_NVAR]) + 1e-6)
    if z < 3.0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    sc = math.log(tail + 1e-10 * (1.0 - tail) + 1e-300) / LOG_TAIL_FLOOR
    return 0.0 if sc < 0.0 else (1.0 if sc > 1.0 else sc)


@kernel
def surprise(x, t, st, s, prm, sig, sig_rel):
    """Update series ``s`` with value ``x`` read at UTC ms ``t``; returns the calibrated score in [0, 1] (0 in warm-up), whether
    the range test fired (a value beyond anything the series has shown) and the change point's score."""
    n = st[s, D_N]
    if n == 0.0:
        st[s, D_MEAN] = x
        st[s, D_LO] = x
        st[s, D_HI] = x
        st[s, D_PREV] = x
        st[s, D_N] = 1.0
        return 0.0, False, 0.0
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
    # clipped at CLIP scales, not deviations: a series constant through its warm-up (a meter at 0 W) has
    # a deviation of 0, and clipping at 0 would hold its baseline there for good
    lim = CLIP * scale if n > prm[P_WARMUP] else np.inf
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
    cs = 0.0
    if prm[P_CHANGE] != 0.0:
        cs = change_score(x, t, mean, scale, alpha * LSLOW, n < prm[P_WARMUP], prm[P_THRESHOLD], st, s, D_CHANGE)
    # never seen this range before
    lo = st[s, D_LO]
    hi = st[s, D_HI]
    margin = prm[P_RANGE] * (hi - lo)
    if margin < sig:
        margin = sig
    # while the range is young, a noise-dominated series (its deviation over RANGE_NOISE of its range: the range
    # is what its noise alone spans) makes new extremes by chance (2 / (n + 1) per reading): such a new extreme
    # counts only when it is also an outlier by the baseline's own rule (beyond CLIP deviations)
    need = RANGE_MIN_DEV
    if prm[P_YOUNG] != 0.0 and n < RANGE_YOUNG and scale > RANGE_NOISE * (hi - lo):
        need = CLIP
    hit = prm[P_RANGE] >= 0.0 and (x > hi + margin or x < lo - margin) and ad > need * scale
    if hit:
        score = 1.0
    if x > hi:
        st[s, D_HI] = x
    if x < lo:
        st[s, D_LO] = x
    if n < prm[P_WARMUP] or ad < sig:
        return 0.0, False, 0.0
    return score, hit, cs


@kernel
def detect_step(series, ts, value, quality, enabled, significant, significant_rel, tz_tr, tz_off, st, prm, score,
                event):
    """Score a batch. ``score[r]`` is the detection score (0 while an event is active): the largest of
    the size score (surprise and range, with the change point), the flat-line, time-of-day, step
    and pattern scores; rows whose size score is >= threshold get the ANOMALY bit where no event is
    active or when the range test fired; ``event[r]`` is EV_START / _FLAT / _TOD / _STEP / _PATTERN for a
    start (by the signal that scored highest; a start by the record rule, below threshold, likewise),
    EV_END for an end, else 0. ``st`` comes from new_state(n, prm). ``significant[s]`` is the
    smallest departure from the baseline that may score, ``significant_rel[s]`` the same as a fraction
    of the baseline; ``tz_tr`` / ``tz_off`` the local time zone's offsets (see local_offset)."""
    if st.shape[1] < D_PATTERN:  # a state narrower than new_state's would be written past its rows
        raise ValueError("detector state narrower than new_state() makes")
    threshold = prm[P_THRESHOLD]
    pattern = prm[P_PATTERN] != 0.0 and st.shape[1] >= DET_COLS  # its columns exist (see new_state)
    skip = np.uint32(prm[P_SKIP])
    for r in range(series.shape[0]):
        s = series[r]
        score[r] = 0.0
        event[r] = 0
        x = value[r]
        if not enabled[s] or not math.isfinite(x) or (quality[r] & skip) != 0:
            continue
        first = st[s, D_N] == 0.0
        sc, hit, cs = surprise(x, ts[r], st, s, prm, significant[s], significant_rel[s])
        rec = sc  # the record rule's evidence: the size and time-of-day scores
        if cs > sc:
            sc = cs
        if cs >= threshold:  # the change point's alarm is reported (it starts an event or joins one): it restarts
            change_restart(st, s, D_CHANGE)
        # the bit marks a value that is anomalous in size on its own: where a size anomaly begins, and every
        # value beyond anything the series has shown; not the ordinary-looking rest of an event, nor shapes
        if sc >= threshold and (hit or st[s, D_ACTIVE] == 0.0):
            quality[r] |= ANOMALY
        kind = EV_START
        if not first:
            n = st[s, D_N]
            dx = x - st[s, D_PREV]
            fs = flat_score(x, st, s, prm, n)
            sv = step_score(dx, st, s, prm, st[s, D_LDIFF] + 1e-9 * (abs(st[s, D_MEAN]) + 1.0))
            sig = significant[s]
            if sig < significant_rel[s] * abs(st[s, D_MEAN]):
                sig = significant_rel[s] * abs(st[s, D_MEAN])
            tscale = TOD_FLOOR * st[s, D_LDEV] + 1e-9 * (abs(st[s, D_MEAN]) + 1.0)
            tds = tod_score(x, ts[r], st, s, prm, tz_tr, tz_off, tscale, sig)
            if tds > rec:
                rec = tds
            pv = 0.0
            if pattern:
                mean = st[s, D_MEAN]
                pv = pattern_score(x, st, s, D_PATTERN, mean, st[s, D_DEV] + FLOOR * st[s, D_LDEV] + 1e-9 * (abs(mean) + 1.0),
                                   prm[P_HISTORY])
            if n <= prm[P_WARMUP] or abs(x - st[s, D_MEAN]) < sig:
                sv = 0.0
                pv = 0.0
            if n <= prm[P_WARMUP]:
                fs = 0.0
                tds = 0.0
            if sv > sc:
                sc = sv
                kind = EV_START_STEP
            if pv > sc:
                sc = pv
                kind = EV_START_PATTERN
            if fs > sc:
                sc = fs
                kind = EV_START_FLAT
            if tds > sc:
                sc = tds
                kind = EV_START_TOD
        else:
            tod_score(x, ts[r], st, s, prm, tz_tr, tz_off, 1.0, 0.0)
        st[s, D_SCORE] = sc
        start = sc >= threshold
        if (prm[P_RECORD] != 0.0 and not first
                and record_start(0.0 if hit else rec, st, s, D_RECORD, st[s, D_N], prm[P_WARMUP])):
            start = True
        if st[s, D_ACTIVE] == 0.0:
            score[r] = threshold if start and sc < threshold else sc
            if start:
                if prm[P_CHANGE] != 0.0:
                    change_restart(st, s, D_CHANGE)
                st[s, D_LAST] = st[s, D_N]
                st[s, D_ACTIVE] = 1.0
                st[s, D_QUIET] = 0.0
                st[s, D_EVPEAK] = sc
                event[r] = kind
            continue
        if sc > st[s, D_EVPEAK]:
            st[s, D_EVPEAK] = sc
        if sc < prm[P_RELEASE]:
            st[s, D_QUIET] += 1.0
            if st[s, D_QUIET] >= prm[P_QUIET] and st[s, D_N] - st[s, D_LAST] >= prm[P_MIN_EVENT]:
                st[s, D_ACTIVE] = 0.0
                event[r] = EV_END
        else:
            st[s, D_QUIET] = 0.0


def score_series(values: np.ndarray, prm: np.ndarray, ts: np.ndarray | None = None) -> np.ndarray:
    """Detection scores of one series from scratch (for evaluation); ``ts`` UTC epoch ms (default: one
    reading a minute from 2024-01-01), read as UTC."""
    n = values.shape[0]
    if ts is None:
        ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000
    series = np.zeros(n, np.int32)
    q = np.zeros(n, np.uint32)
    st = new_state(1)
    score = np.empty(n)
    event = np.zeros(n, np.int8)
    detect_step(series, np.ascontiguousarray(ts, np.int64), np.ascontiguousarray(values, np.float64), q, np.ones(1, np.bool_),
                np.zeros(1), np.zeros(1), *UTC, st, prm, score, event)
    return score
