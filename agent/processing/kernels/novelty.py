"""Parts of the anomaly detector (agent.processing.kernels.detect) that see a series' course, not one
reading: pattern novelty, a change point and the record rule. Each keeps a fixed block of the detector's
per-series state, ``PAT_COLS``, ``CHANGE_COLS`` and 1 numbers from the column the detector passes (``b``).

**Pattern novelty** (adaptive-resonance style). Readings are taken in blocks of ``PAT_BLOCK``; the last
``PAT_WIDTH`` block means, in deviations from the baseline, form a window that is matched against up to
``PAT_PROTOS`` learnt prototypes. The nearest within ``PAT_RHO`` deviations (RMS) moves toward the window;
otherwise the window becomes a new prototype (replacing the least used when all are taken). The log distance
to the nearest prototype, at each block's end, is compared with its own long run (running mean and variance,
Gaussian tail on the detector's log scale, its z taken ``PAT_ZMUL`` times): a course the series has not run
before, at an ordinary size.

**Change point.** A two-sided CUSUM of the deviation from the baseline in deviations (clipped at ``CLIP``),
drift allowance ``CHANGE_K``; its score is ``threshold x sum / CHANGE_H`` (the detector's threshold): below the
threshold on the way, where it can hold an event open but starts none; a sum passing ``CHANGE_H`` stops there, at
the threshold, until the detector reports the alarm (at a reading that departs from the baseline by the
significant change), and both restart: a slow level shift that the baseline follows is still found. It steps
each time a block of readings spanning ``CHANGE_BLOCK_MS`` (5 minutes; at least ``CHANGE_SLACK`` of it, the
poller's jitter) or holding ``CHANGE_BLOCK_MAX`` readings (a clock that stands still) closes, on the block's mean
(a series read every 5 minutes or slower, jittered or not: on each reading): its false alarms come per step and
the budget is per day, so a series read every second gets no more of them a day than one read every 5 minutes.
And it runs only on a series whose block means move like noise around a level: the lag-1 autocorrelation of
their increments below ``CHANGE_GATE`` (-0.5 for independent noise, 0 for a random walk, towards +1 for smooth
wander; learnt from the detector's warm-up on, each increment clipped to ``CLIP`` times their RMS once that is
not 0); elsewhere (a random walk, a slowly wandering load) the baseline lags by the series' own nature, the gate
is shut and both sums are at 0 (a gate younger than about 50 blocks averages few increments and may open for a
block). An event start restarts the sums (its evidence is reported; a shift that stays builds them again and
holds the event).

**Record rule.** A reading's evidence (a score on the detector's log scale) that is the highest the series has
shown since its warm-up, at least ``RECORD_MIN``, from reading ``RECORD_AGE`` on, and improbable for the
readings seen (``n x tail <= 1``: a calibrated score sets a new record by chance about ln n times in n
readings) starts an event below the detector's threshold.
"""

from __future__ import annotations

import math

from ..jit import kernel

CLIP = 4.0  # deviations (as the detector's baseline clipping)
LOG_TAIL_FLOOR = math.log(1e-10)  # the detector's log scale: a tail of 1e-10 scores 1
PAT_BLOCK = 8  # readings per block
PAT_WIDTH = 8  # blocks per window
PAT_PROTOS = 32  # prototypes kept
PAT_RHO = 2.0  # a window within this RMS distance (deviations) of a prototype teaches it
PAT_RATE = 0.05  # a prototype follows its windows at least this fast
PAT_TAU = 2000.0  # blocks: a prototype's use count decays with this time constant
PAT_ZMUL = 1.5  # the calibration's z is taken this many times
PAT_COORD = 2.0 * CLIP  # a coordinate is clipped to +- this many deviations
# pattern state, from column b: calibration, prototypes in use, the open block, blocks seen, the last window's
# block means (a ring), then PAT_PROTOS x (PAT_WIDTH coordinates, use count, last use)
P_MU, P_VAR, P_NP, P_SUM, P_CNT, P_NB = range(6)
P_RING = 6
P_PROTO = P_RING + PAT_WIDTH
P_STRIDE = PAT_WIDTH + 2
PAT_COLS = P_PROTO + PAT_PROTOS * P_STRIDE
CHANGE_K = 1.0  # drift allowance, deviations per step
CHANGE_H = 240.0  # alarm (and restart) when a sum passes this many deviations
CHANGE_BLOCK_MS = 300_000.0  # a step's block of readings spans this long (ms) ...
CHANGE_SLACK = 0.9  # ... at least this fraction of it: the poller puts each poll up to 5 % of an interval after its
# grid point (its default jitter), so a block whose intervals add up to 5 minutes on the grid measures at least 5
# minutes less 2 x 5 % of an interval (one at each end), i.e. 90 % of 5 minutes at most (an interval of 5 minutes)
CHANGE_GATE = -0.25  # runs while the lag-1 autocorrelation of block increments is below this (noise -0.5, walk 0)
CHANGE_BLOCK_MAX = 3000.0  # ... or holds this many readings (5 minutes at 10 a second; a clock that stands still)
# change point state, from column b: the upward and the downward sum, the open block (sum, count, first time), the
# last reading's time, the last block mean and increment, averages of the increments' lag-1 product and square,
# blocks closed, the score held until the next block closes
C_UP, C_DOWN, C_SUM, C_CNT, C_T0, C_TLAST, C_PREV, C_DPREV, C_PROD, C_SQ, C_NB, C_SCORE = range(12)
CHANGE_COLS = 12
RECORD_MIN = 0.35  # a record starts an event from this score on ...
RECORD_AGE = 500  # ... from this reading on


@kernel
def _coord(st, s, b, j, pos, mean, scale):
    """The window's ``j``-th coordinate (oldest first): a block mean in deviations from the baseline, clipped."""
    c = (st[s, b + P_RING + (pos + 1 + j) % PAT_WIDTH] - mean) / scale
    c = c if c < PAT_COORD else PAT_COORD
    return c if c > -PAT_COORD else -PAT_COORD


@kernel
def pattern_score(x, st, s, b, mean, scale, history):
    """Pattern novelty of series ``s`` after reading ``x`` (``mean`` and ``scale``: the detector's baseline and
    deviation); 0 except at a block's end. Updates the state from column ``b``."""
    st[s, b + P_SUM] += x
    st[s, b + P_CNT] += 1.0
    if st[s, b + P_CNT] < PAT_BLOCK:
        return 0.0
    blk = st[s, b + P_SUM] / PAT_BLOCK
    st[s, b + P_SUM] = 0.0
    st[s, b + P_CNT] = 0.0
    nb = st[s, b + P_NB] + 1.0
    st[s, b + P_NB] = nb
    pos = int(nb) % PAT_WIDTH
    st[s, b + P_RING + pos] = blk
    if nb < PAT_WIDTH:
        return 0.0
    npro = int(st[s, b + P_NP])
    best = 1e300
    bk = -1
    for k in range(npro):
        p = b + P_PROTO + k * P_STRIDE
        tot = 0.0
        for j in range(PAT_WIDTH):
            e = _coord(st, s, b, j, pos, mean, scale) - st[s, p + j]
            tot += e * e
        if tot < best:
            best = tot
            bk = k
    dist = math.sqrt(best / PAT_WIDTH) if bk >= 0 else PAT_COORD
    if bk >= 0 and dist <= PAT_RHO:  # resonance: the nearest prototype learns the window
        p = b + P_PROTO + bk * P_STRIDE
        cnt = st[s, p + PAT_WIDTH] * math.exp(-(nb - st[s, p + PAT_WIDTH + 1]) / PAT_TAU) + 1.0
        lr = 1.0 / cnt
        if lr < PAT_RATE:
            lr = PAT_RATE
        for j in range(PAT_WIDTH):
            st[s, p + j] += lr * (_coord(st, s, b, j, pos, mean, scale) - st[s, p + j])
        st[s, p + PAT_WIDTH] = cnt
        st[s, p + PAT_WIDTH + 1] = nb
    else:  # a new prototype, in place of the least used one when all are taken
        k = npro
        if npro >= PAT_PROTOS:
            low = 1e300
            for q in range(npro):
                p = b + P_PROTO + q * P_STRIDE
                u = st[s, p + PAT_WIDTH] * math.exp(-(nb - st[s, p + PAT_WIDTH + 1]) / PAT_TAU)
                if u < low:
                    low = u
                    k = q
        else:
            st[s, b + P_NP] = npro + 1.0
        p = b + P_PROTO + k * P_STRIDE
        for j in range(PAT_WIDTH):
            st[s, p + j] = _coord(st, s, b, j, pos, mean, scale)
        st[s, p + PAT_WIDTH] = 1.0
        st[s, p + PAT_WIDTH + 1] = nb
    # calibrate the log distance against its own long run (over ``history`` readings)
    raw = math.log(dist + 1e-3)
    a = 1.0 / (nb - PAT_WIDTH + 1.0)
    if a < PAT_BLOCK / history:
        a = PAT_BLOCK / history
    mu = st[s, b + P_MU]
    dm = raw - mu
    st[s, b + P_MU] = mu + a * dm
    st[s, b + P_VAR] = (1.0 - a) * (st[s, b + P_VAR] + a * dm * dm)
    z = PAT_ZMUL * dm / (math.sqrt(st[s, b + P_VAR]) + 1e-6)
    if z < 3.0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    sc = math.log(tail + 1e-10 * (1.0 - tail) + 1e-300) / LOG_TAIL_FLOOR
    return 0.0 if sc < 0.0 else (1.0 if sc > 1.0 else sc)


@kernel
def change_score(x, t, mean, scale, slow, young, threshold, st, s, b):
    """The change point after reading ``x`` at UTC ms ``t`` (``mean``, ``scale``: the detector's baseline and
    deviation before it; ``slow``: the slowest rate of the gate's averages; ``young``: the detector is in its
    warm-up; ``threshold``: the detector's): ``threshold x sum / CHANGE_H`` (below the threshold on the way; at the
    alarm the sums stop at CHANGE_H and it is the threshold until the detector reports it and restarts them),
    held until the next block closes; 0 where the gate is shut. State from column ``b``."""
    if st[s, b + C_CNT] == 0.0:  # a block opens
        if st[s, b + C_NB] == 0.0 or t < st[s, b + C_TLAST]:  # the first reading, or the clock went back
            st[s, b + C_TLAST] = t
        st[s, b + C_T0] = t
    elif t < st[s, b + C_TLAST]:  # the clock went back: the block spans from now
        st[s, b + C_T0] = t
        st[s, b + C_TLAST] = t
    st[s, b + C_SUM] += x
    st[s, b + C_CNT] += 1.0
    last = t - st[s, b + C_TLAST]
    st[s, b + C_TLAST] = t
    if (t - st[s, b + C_T0]) + last < CHANGE_SLACK * CHANGE_BLOCK_MS and st[s, b + C_CNT] < CHANGE_BLOCK_MAX:
        return st[s, b + C_SCORE]
    m = st[s, b + C_SUM] / st[s, b + C_CNT]
    st[s, b + C_SUM] = 0.0
    st[s, b + C_CNT] = 0.0
    # blocks closed since the warm-up (the gate learns from the first increment after it: before, the baseline and
    # its deviation, which floor the gate's clipping, are still settling, and a first reading far off would rule it)
    nb = 1.0 if young else st[s, b + C_NB] + 1.0
    st[s, b + C_NB] = nb
    noise = False
    if nb > 1.0:  # the gate: the lag-1 autocorrelation of block increments
        dx = m - st[s, b + C_PREV]
        # an increment counts at most CLIP times their RMS (one jump of an anomaly rules the gate only briefly), once
        # that is known: the first increment, and any while every one so far was 0 (a quantised sensor, a meter at
        # 0 W), counts as it is (a limit of 0 would clip every later increment to 0 and shut the gate for good)
        rms = math.sqrt(st[s, b + C_SQ])
        if rms > 0.0:
            dx = dx if dx < CLIP * rms else CLIP * rms
            dx = dx if dx > -CLIP * rms else -CLIP * rms
        a = 1.0 / (nb - 1.0)  # running averages while young: the squares from the first increment on, ...
        if a < slow:
            a = slow
        st[s, b + C_SQ] += a * (dx * dx - st[s, b + C_SQ])
        if nb > 2.0:  # ... the lag-1 products from the second
            a = 1.0 / (nb - 2.0)
            if a < slow:
                a = slow
            st[s, b + C_PROD] += a * (dx * st[s, b + C_DPREV] - st[s, b + C_PROD])
        st[s, b + C_DPREV] = dx
        noise = nb > 2.0 and st[s, b + C_PROD] < CHANGE_GATE * st[s, b + C_SQ]
    st[s, b + C_PREV] = m
    if not noise:
        change_restart(st, s, b)
        return 0.0
    dz = (m - mean) / scale
    dz = dz if dz < CLIP else CLIP
    dz = dz if dz > -CLIP else -CLIP
    up = st[s, b + C_UP] + dz - CHANGE_K
    down = st[s, b + C_DOWN] - dz - CHANGE_K
    up = up if up > 0.0 else 0.0
    down = down if down > 0.0 else 0.0
    up = up if up < CHANGE_H else CHANGE_H  # the alarm: held until reported (see change_restart)
    down = down if down < CHANGE_H else CHANGE_H
    top = up if up > down else down
    st[s, b + C_UP] = up
    st[s, b + C_DOWN] = down
    sc = threshold * top / CHANGE_H
    sc = 1.0 if sc > 1.0 else sc
    st[s, b + C_SCORE] = sc
    return sc


@kernel
def change_restart(st, s, b):
    """Restart the change point's sums and its held score (where its alarm is reported, at any event start, and
    where its gate is shut)."""
    st[s, b + C_UP] = 0.0
    st[s, b + C_DOWN] = 0.0
    st[s, b + C_SCORE] = 0.0


@kernel
def record_start(ev, st, s, b, n, warmup):
    """The record rule on evidence ``ev`` at the series' ``n``-th reading: whether it starts an event; a higher
    evidence than the record (in column ``b``) past ``warmup`` readings becomes the record."""
    top = st[s, b]
    start = n > RECORD_AGE and ev > top > 0.0 and ev >= RECORD_MIN and ev >= math.log(n) / -LOG_TAIL_FLOOR
    if n > warmup and ev > top:
        st[s, b] = ev
    return start
