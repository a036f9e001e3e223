"""Detector signals for a series' course, all on by default: pattern novelty (a rhythm that changes at ordinary
size), the record rule (the series' strongest evidence yet, below the threshold) and the change point (a slow level
shift the baseline follows, only on a series whose 5-minute means move like noise around a level). Each finds what
the detector without it misses; causal, scale invariant, numba build == plain Python build, and broken input
(clocks that jump too) neither crashes nor scores outside [0, 1]; the change point stays silent on random walks,
with measurement noise or without."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.processing import kernels
from agent.processing.kernels import novelty
from agent.processing.kernels.detect import (
    EV_START,
    EV_START_FLAT,
    EV_START_PATTERN,
    EV_START_STEP,
    EV_START_TOD,
)
from tests.detect_helpers import detect, shipped
from tests.detect_helpers import run_series as run

STARTS = (EV_START, EV_START_FLAT, EV_START_TOD, EV_START_STEP, EV_START_PATTERN)
AT = {"pattern": 6000, "change": 6000, "record": 5000}  # where each case's anomaly begins
ALL = dict(pattern=True, change=True, record=True)


def minutes(n: int, every: int = 1) -> np.ndarray:
    return 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000 * every


def times(case: str, n: int) -> np.ndarray:
    """The change point steps on 5-minute means: its case is read every 5 minutes (one step a reading), the others
    every minute."""
    return minutes(n, 5 if case == "change" else 1)


def pulses(seed: int) -> np.ndarray:
    """A pulse of 5 for 8 readings every 64 (a compressor cycling), small noise; from reading 6000 the pulses
    come every 32 readings: each reading of an ordinary size, the rhythm is new."""
    rng = np.random.default_rng(seed)
    i = np.arange(10_000)
    v = 10 + np.where(i % 64 < 8, 5.0, 0.0) + rng.uniform(-0.05, 0.05, len(i))
    at = AT["pattern"]
    v[at:] = 10 + np.where(i[at:] % 32 < 8, 5.0, 0.0) + rng.uniform(-0.05, 0.05, len(i) - at)
    return v


def slow_fall(seed: int) -> np.ndarray:
    """Noise of +-1 (an early dip to -20 makes the range wide), then from reading 6000 a fall of 6 over 1,000
    readings: never beyond the range, never a jump, the baseline following a few deviations behind. Read every 5
    minutes (see times)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1, 1, 10_000)
    v[200:260] -= 20
    at = AT["change"]
    v[at:at + 1000] -= np.linspace(0, 6, 1000)
    v[at + 1000:] -= 6
    return v


def held_high(seed: int = 3) -> np.ndarray:
    """Noise of +-1; from reading 5000, 20 readings held near 0.8, inside the range: the strongest evidence the
    series has shown, below the threshold."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1, 1, 6000)
    at = AT["record"]
    v[at:at + 20] = 0.8 + rng.uniform(-0.05, 0.05, 20)
    return v


CASES = {"pattern": pulses, "change": slow_fall, "record": held_high}


def starts(ev: np.ndarray, lo: int) -> list[int]:
    idx = np.flatnonzero(np.isin(ev, STARTS))
    return [int(i) for i in idx if i >= lo]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rhythm_that_changes_at_ordinary_size_starts_a_pattern_event(seed):
    v = pulses(seed)
    at = AT["pattern"]
    _, ev, _, _ = run(v, minutes(len(v)))  # shipped
    found = starts(ev, 1000)
    assert found and at <= found[0] < at + 128 and ev[found[0]] == EV_START_PATTERN
    _, ev_off, _, _ = run(v, minutes(len(v)), prm=shipped(pattern=False))
    assert starts(ev_off, 1000) == []  # every value, every step is an ordinary one


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slow_level_shift_is_found_by_the_change_point(seed):
    v = slow_fall(seed)
    at = AT["change"]
    score, ev, _, _ = run(v, times("change", len(v)))  # shipped
    found = starts(ev, 1000)
    assert len(found) == 1 and at < found[0] < at + 1000 and ev[found[0]] == EV_START
    _, ev_off, _, _ = run(v, times("change", len(v)), prm=shipped(change=False))
    assert starts(ev_off, 1000) == []  # the baseline follows: no reading is far enough from it


def walk(seed: int, n: int, step: float, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.normal(0.0, step, n)) + rng.normal(0.0, noise, n)


@pytest.mark.parametrize(("name", "v", "every_s", "significant"), [
    # a sensor whose true value wanders, with measurement noise, read every 2 s for two days (a significant change of
    # 5 noise deviations): the noise rules its reading-to-reading steps, the wander its 5-minute means
    ("noisy walk, 2 s", walk(1, 86_400, 0.5, 1.0), 2, 5.0),
    ("noisy walk, 2 s, seed 2", walk(2, 86_400, 0.25, 1.0), 2, 5.0),
    # a noise-free random walk read every 5 minutes for two months (the simulated PM sensor's kind)
    ("walk, 5 min", walk(3, 17_280, 1.0, 0.0), 300, 0.0),
    # a smooth daily wander with a little noise, read every minute for two weeks
    ("smooth wander, 1 min", 100 + 10 * np.sin(np.arange(20_160) * 2 * np.pi / 1440)
     + np.random.default_rng(4).normal(0, 0.1, 20_160), 60, 0.0),
])
def test_the_change_point_stays_silent_where_the_baseline_lags_by_the_series_nature(name, v, every_s, significant):
    """On a random walk or a smooth wander the baseline lags a few deviations behind for long stretches, which a CUSUM
    of its deviations takes for a change: the gate keeps it shut. Read a block at a time: from the gate's 50th
    block on its statistic is above CHANGE_GATE after every block and both sums are at 0; the events are those
    without the change point."""
    n = len(v)
    ts = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 1000 * every_s
    per = max(1, 300 // every_s)  # readings a block
    p = kernels.detect
    out = {}
    for change in (True, False):
        prm = shipped(change=change)
        st_, score, ev = p.new_state(1, prm), np.empty(n), np.zeros(n, np.int8)
        shut = []
        for lo in range(0, n, per):
            hi = min(n, lo + per)
            m = hi - lo
            detect.detect_step(np.zeros(m, np.int32), ts[lo:hi], v[lo:hi], np.zeros(m, np.uint32),
                               np.ones(1, np.bool_), np.full(1, significant), np.zeros(1), *p.UTC, st_, prm,
                               score[lo:hi], ev[lo:hi])
            if change and st_[0, p.D_CHANGE + novelty.C_NB] >= 50:  # a younger gate averages too few
                c = st_[0, p.D_CHANGE:]
                shut.append(c[novelty.C_PROD] >= novelty.CHANGE_GATE * c[novelty.C_SQ]
                            and c[novelty.C_UP] == c[novelty.C_DOWN] == 0.0)
        out[change] = starts(ev, 0)
        if change:
            assert len(shut) > 0.9 * n / per and all(shut), name
    assert out[True] == out[False], name


@pytest.mark.parametrize("build", ["python", "compiled"])
def test_a_clock_that_jumps_back_or_decades_ahead_neither_crashes_nor_stalls_the_change_point(build):
    """Timestamps from 1970 (a Pi without its clock), then repaired decades ahead, then a day back: every score in
    [0, 1], the state finite, and the change point still steps (its blocks close) after each jump."""
    p = kernels.detect
    fn = p.detect_step if build == "python" else detect.detect_step
    v = slow_fall(1)
    n = len(v)
    ts = np.arange(n, dtype=np.int64) * 300_000
    ts[3000:] += 1_704_067_200_000
    ts[6500:] -= 86_400_000
    prm = shipped()
    st_, score, ev = p.new_state(1, prm), np.empty(n), np.zeros(n, np.int8)
    fn(np.zeros(n, np.int32), ts, v, np.zeros(n, np.uint32), np.ones(1, np.bool_), np.zeros(1), np.zeros(1), *p.UTC, st_,
       prm, score, ev)
    assert np.all((score >= 0.0) & (score <= 1.0)) and np.isfinite(st_).all()
    # blocks closed since the warm-up (the gate learns from then on): one a reading from the warm-up's last reading
    # on, but the two after the jump back in one
    assert st_[0, p.D_CHANGE + novelty.C_NB] == n - prm[p.P_WARMUP]
    found = starts(ev, 1000)
    assert len(found) == 1 and AT["change"] < found[0] < AT["change"] + 1000


def test_the_series_strongest_evidence_yet_starts_an_event_below_the_threshold():
    v = held_high()
    at = AT["record"]
    score, ev, _, _ = run(v, minutes(len(v)))  # shipped
    found = starts(ev, 500)
    assert len(found) == 1 and at <= found[0] < at + 30 and score[found[0]] == 0.5  # reported at the threshold
    off, ev_off, _, _ = run(v, minutes(len(v)), prm=shipped(record=False))
    assert starts(ev_off, 500) == [] and off[at:].max() < 0.5


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_new_signals_are_scale_invariant(case):
    v = CASES[case](1 if case != "record" else 3)
    a = run(v, times(case, len(v)), prm=shipped(**ALL))
    b = run(v * 1000 + 7, times(case, len(v)), prm=shipped(**ALL))
    assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-6)
    assert starts(a[1], AT[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_new_signals_are_causal(case):
    v = CASES[case](1 if case != "record" else 3)
    cut = AT[case] + 15
    w = v.copy()
    w[cut:] = np.random.default_rng(cut).normal(500, 100, len(v) - cut)
    a, b = run(v, times(case, len(v)), prm=shipped(**ALL)), run(w, times(case, len(v)), prm=shipped(**ALL))
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x[:cut], y[:cut])


@pytest.mark.parametrize(("case", "every"), [(c, None) for c in sorted(CASES)] + [("change", 1)])
def test_the_new_signals_jit_equals_python(case, every):
    """Each case at its cadence, and the change point's read every minute too (five readings a block)."""
    v = CASES[case](1 if case != "record" else 3)
    ts = times(case, len(v)) if every is None else minutes(len(v), every)
    a = run(v, ts, prm=shipped(**ALL))
    b = run(v, ts, prm=shipped(**ALL), fn=kernels.detect.detect_step)  # plain Python throughout
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


broken = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, -0.0, 5e-324, 1e-300, np.nan, np.inf, -np.inf]))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.lists(st.tuples(st.integers(0, 700), broken, st.integers(1, 40)), max_size=12),
       st.integers(0, 2**16))
def test_each_new_signal_on_its_own_survives_broken_input(signal, damage, seed):
    """Non-finite readings, denormals, huge jumps and runs of one value pasted into a varying series: the
    signal never crashes, every score stays in [0, 1], the state stays finite, and numba == Python."""
    v = np.random.default_rng(seed).uniform(-1, 1, 800)
    for at, x, length in damage:
        v[at:at + length] = x
    prm = shipped(**{s: s == signal for s in CASES})
    with np.errstate(all="ignore"):
        a = run(v, times(signal, len(v)), prm=prm)
        b = run(v, times(signal, len(v)), prm=prm, fn=kernels.detect.detect_step)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y, equal_nan=True)
    score, _, _, state = a
    assert np.all((score >= 0.0) & (score <= 1.0)) and np.isfinite(state).all()


def test_pattern_novelty_the_record_rule_and_the_change_point_are_shipped():
    """Shipped: pattern novelty, the record rule and the change point; with pattern novelty switched off its
    334 numbers per series are not allocated, and a state without them switches it off rather than reaching past
    the row."""
    prm = shipped()
    p = kernels.detect
    assert (prm[p.P_PATTERN], prm[p.P_RECORD], prm[p.P_CHANGE]) == (1.0, 1.0, 1.0)
    assert p.new_state(1, prm).shape[1] == p.new_state(1).shape[1] == p.DET_COLS
    assert p.new_state(1, shipped(pattern=False)).shape[1] == p.D_PATTERN == p.DET_COLS - 334
    v = pulses(1)
    st_small = p.new_state(1, shipped(pattern=False))
    n = len(v)
    score, ev = np.empty(n), np.zeros(n, np.int8)
    p.detect_step(np.zeros(n, np.int32), minutes(n), v, np.zeros(n, np.uint32), np.ones(1, np.bool_), np.zeros(1),
                  np.zeros(1), *p.UTC, st_small, prm, score, ev)
    assert not (ev == EV_START_PATTERN).any()


@pytest.mark.parametrize("build", ["python", "compiled"])
def test_a_state_narrower_than_new_state_makes_is_refused_not_written_past(build) -> None:
    """A compiled kernel writing past a state's rows corrupts memory silently: a state without the
    record rule's and the change point's columns (the detector's width before them) is refused."""
    p = kernels.detect
    fn = p.detect_step if build == "python" else detect.detect_step
    narrow = np.zeros((1, p.D_RECORD), np.float64)
    n = 10
    with pytest.raises(ValueError, match="narrower"):
        fn(np.zeros(n, np.int32), minutes(n), np.ones(n), np.zeros(n, np.uint32), np.ones(1, np.bool_), np.zeros(1),
           np.zeros(1), *p.UTC, narrow, shipped(), np.empty(n), np.zeros(n, np.int8))


def jittered(kind: str, n: int, seed: int) -> np.ndarray:
    """Times of a series read every 5 minutes as a poller reads it: ``"1 s"`` each reading up to 1 s early or late,
    ``"poller"`` up to 5 % of the interval late (the poller's default jitter), ``"slow clock"`` every 299.999 s."""
    t0 = 1_704_067_200_000
    rng = np.random.default_rng(seed)
    if kind == "slow clock":
        return t0 + np.arange(n, dtype=np.int64) * 299_999
    grid = t0 + np.arange(n, dtype=np.int64) * 300_000
    if kind == "1 s":
        return grid + rng.integers(-1000, 1001, n)
    return grid + rng.integers(0, 15_000, n)


@pytest.mark.parametrize("kind", ["1 s", "poller", "slow clock"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_series_read_every_5_minutes_steps_the_change_point_on_every_reading_despite_jitter(kind, seed):
    """A 5-minute series' intervals are 5 minutes give or take its poller's jitter: each reading still closes a
    block, and the slow fall is found as on an exact grid."""
    v = slow_fall(seed)
    at = AT["change"]
    _, ev, _, st_ = run(v, jittered(kind, len(v), seed))
    found = starts(ev, 1000)
    assert len(found) == 1 and at < found[0] < at + 1000 and ev[found[0]] == EV_START
    # blocks closed since the warm-up: one a reading from the warm-up's last reading on
    assert st_[0, kernels.detect.D_CHANGE + novelty.C_NB] == len(v) - shipped()[kernels.detect.P_WARMUP] + 1


def gate_ratio(state: np.ndarray) -> float:
    """The change point's gate statistic: the lag-1 autocorrelation of its block increments (it runs below
    CHANGE_GATE)."""
    c = state[0, kernels.detect.D_CHANGE:]
    return c[novelty.C_PROD] / c[novelty.C_SQ] if c[novelty.C_SQ] > 0.0 else 0.0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("start", ["equal first readings", "at 0 W as the warm-up ends", "far off at first"])
def test_the_change_points_gate_opens_on_noise_whatever_the_series_starts_with(start, seed):
    """The gate's clipping of block increments learns their size from the increments: a first increment of 0 (equal
    first readings, or a meter at 0 W when the gate starts learning after the warm-up) must not clip every later
    increment to 0, nor one far-off first reading make every later one look small for thousands of blocks. The gate
    is open on the noise 1,000 readings in, and the slow fall is found."""
    v = slow_fall(seed)
    if start == "equal first readings":
        v[:5] = 0.0
    elif start == "at 0 W as the warm-up ends":
        v[140:190] = 0.0
    else:
        v[2] += 100.0
    ts = times("change", len(v))
    _, _, _, st_ = run(v[:1000], ts[:1000])
    assert gate_ratio(st_) < novelty.CHANGE_GATE
    _, ev, _, _ = run(v, ts)
    found = starts(ev, 1000)
    assert len(found) == 1 and AT["change"] < found[0] < AT["change"] + 1000


def change_steps(xs, mean=0.0, scale=10.0, every_ms=300_000, threshold=0.5):
    """Readings straight through the change point (plain Python), one every ``every_ms``, against a fixed baseline
    past the warm-up: (scores, state)."""
    st_ = np.zeros((1, novelty.CHANGE_COLS))
    out = [novelty.change_score(x, 1_704_067_200_000 + i * every_ms, mean, scale, 1e-4, False, threshold, st_, 0, 0)
           for i, x in enumerate(xs)]
    return np.array(out), st_


def test_the_gates_averages_are_plain_averages_while_young():
    """Block means alternating 0, 1 (the first block holds the first two readings): every increment is +-1, every
    lag-1 product -1, so both averages are exact from their first sample on (a product average started from 0
    at the squares' rate would be biased towards 0)."""
    _, st_ = change_steps([0.0, 0.0] + [1.0, 0.0] * 5)
    c = st_[0]
    assert c[novelty.C_NB] == 11 and c[novelty.C_SQ] == 1.0 and c[novelty.C_PROD] == -1.0


@pytest.mark.parametrize("threshold", [0.4, 0.55])
def test_the_change_points_score_reaches_the_configured_threshold_at_its_alarm_and_not_before(threshold):
    """Readings 4.5 +- 0.5 deviations above a fixed baseline (clipped at 4: the upward sum grows by 3 a step): the
    score stays below the threshold until the sum passes CHANGE_H, and reaches it there, whatever the threshold
    (the same reading as at the shipped 0.5)."""
    xs = [4.5, 4.5] + [5.0, 4.0] * 60
    sc, _ = change_steps(xs, scale=1.0, threshold=threshold)
    alarm = int(np.argmax(sc >= threshold))
    shipped_sc, _ = change_steps(xs, scale=1.0)
    assert alarm == int(np.argmax(shipped_sc >= 0.5)) > 70  # 80 steps of 3 from the gate's opening
    assert sc[alarm] >= threshold and np.all(sc[:alarm] < threshold) and sc[:alarm].max() > 0.9 * threshold


def test_a_slow_level_shift_is_found_at_a_threshold_above_the_shipped_one():
    v = slow_fall(1)
    _, ev, _, _ = run(v, times("change", len(v)), prm=shipped(threshold=0.55))
    found = starts(ev, 1000)
    assert len(found) == 1 and AT["change"] < found[0] < AT["change"] + 1000 and ev[found[0]] == EV_START


@pytest.mark.parametrize("significant", [2.0, 2.5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_change_point_alarm_waits_for_a_reading_that_departs_by_the_significant_change(seed, significant):
    """With a significant change the readings of the slow fall depart from the baseline by that much only now and
    then (the baseline lags about 2 behind, the noise is +-1: at most 2.9): an alarm at a reading closer than that is
    held, not thrown away with its sums, and reported at the next reading that departs far enough."""
    v = slow_fall(seed)
    n = len(v)
    p = kernels.detect
    prm = shipped()
    st_, score, ev = p.new_state(1, prm), np.empty(n), np.zeros(n, np.int8)
    detect.detect_step(np.zeros(n, np.int32), times("change", n), v, np.zeros(n, np.uint32), np.ones(1, np.bool_),
                       np.full(1, significant), np.zeros(1), *p.UTC, st_, prm, score, ev)
    found = starts(ev, 1000)
    assert len(found) == 1 and AT["change"] < found[0] < AT["change"] + 1000 and ev[found[0]] == EV_START


def test_a_clock_that_stands_still_does_not_hold_the_change_point_for_good():
    """From reading 3,000 the clock stands still (the same time on every reading): the change point's blocks close
    after CHANGE_BLOCK_MAX readings, so it keeps stepping and its held score is not held forever."""
    v = slow_fall(1)
    n = len(v)
    ts = times("change", n)
    freeze = 3000
    ts[freeze:] = ts[freeze]
    col = kernels.detect.D_CHANGE + novelty.C_NB
    before = run(v[:freeze + 1], ts[:freeze + 1])[3][0, col]  # the first reading at the still time closes a block
    score, _, _, st_ = run(v, ts)
    assert st_[0, col] == before + (n - freeze - 1) // novelty.CHANGE_BLOCK_MAX
    held = score[freeze:]
    assert not np.all(held == held[0])
