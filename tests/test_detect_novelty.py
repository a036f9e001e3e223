"""Detector signals for a series' course: pattern novelty (a rhythm that changes at ordinary size) and the record
rule (the series' strongest evidence yet, below the threshold), on by default, and the change point (a slow level
shift the baseline follows), in the kernel and off by default. Each finds what the detector without it misses;
causal, scale invariant, numba build == plain Python build, and broken input neither crashes nor scores outside
[0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.processing import kernels
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


def minutes(n: int) -> np.ndarray:
    return 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000


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
    readings: never beyond the range, never a jump, the baseline following a few deviations behind."""
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
    score, ev, _, _ = run(v, minutes(len(v)), prm=shipped(change=True))
    found = starts(ev, 1000)
    assert len(found) == 1 and at < found[0] < at + 1000 and ev[found[0]] == EV_START
    _, ev_off, _, _ = run(v, minutes(len(v)))  # shipped
    assert starts(ev_off, 1000) == []  # the baseline follows: no reading is far enough from it


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
    a = run(v, minutes(len(v)), prm=shipped(**ALL))
    b = run(v * 1000 + 7, minutes(len(v)), prm=shipped(**ALL))
    assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-6)
    assert starts(a[1], AT[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_new_signals_are_causal(case):
    v = CASES[case](1 if case != "record" else 3)
    cut = AT[case] + 15
    w = v.copy()
    w[cut:] = np.random.default_rng(cut).normal(500, 100, len(v) - cut)
    a, b = run(v, minutes(len(v)), prm=shipped(**ALL)), run(w, minutes(len(v)), prm=shipped(**ALL))
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x[:cut], y[:cut])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_new_signals_jit_equals_python(case):
    v = CASES[case](1 if case != "record" else 3)
    a = run(v, minutes(len(v)), prm=shipped(**ALL))
    b = run(v, minutes(len(v)), prm=shipped(**ALL), fn=kernels.detect.detect_step)  # plain Python throughout
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
    prm = shipped(**{signal: True})
    with np.errstate(all="ignore"):
        a = run(v, minutes(len(v)), prm=prm)
        b = run(v, minutes(len(v)), prm=prm, fn=kernels.detect.detect_step)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y, equal_nan=True)
    score, _, _, state = a
    assert np.all((score >= 0.0) & (score <= 1.0)) and np.isfinite(state).all()


def test_pattern_novelty_and_the_record_rule_are_shipped_the_change_point_is_not():
    """Shipped: pattern novelty and the record rule, not the change point; with pattern novelty switched off its
    334 numbers per series are not allocated, and a state without them switches it off rather than reaching past
    the row."""
    prm = shipped()
    p = kernels.detect
    assert (prm[p.P_PATTERN], prm[p.P_RECORD], prm[p.P_CHANGE]) == (1.0, 1.0, 0.0)
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
