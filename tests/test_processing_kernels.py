"""Kernels: numba build == plain-Python build (py_func) == independent reference, incl. nasty data.

Collected and run without numba too (32-bit Pi OS): then both builds are the Python one, checked
against the reference; tests/test_without_numba.py runs this module that way."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))
try:
    import numba.core.config as _nbconfig
except ImportError:  # no numba: the kernels are the plain Python functions
    pass
else:
    _nbconfig.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agent.model import Quality  # noqa: E402
from agent.processing import kernels  # noqa: E402
from agent.processing.jit import compiled, py_func  # noqa: E402


def _built(module):
    """The numba build of a kernel module; the module itself (plain Python kernels) without numba."""
    try:
        return compiled(module)
    except ImportError:
        return module


# the numba builds; py_func(...) of each is the plain Python kernel
counters, detect, quality, window = (_built(m) for m in (kernels.counters, kernels.detect, kernels.quality,
                                                         kernels.window))

W = 60_000
GAP = 5_000
NSER = 3


def run_windows(step, flush, s, ts, v, q, delta, cutoff):
    si, sf = window.new_state(NSER)
    gap = np.full(NSER, GAP, np.int64)
    n = len(s)
    oi, of = np.empty((n, 6), np.int64), np.empty((n, 8))
    k = step(s, ts, v, q, delta, np.uint32(1), W, gap, si, sf, oi, of)
    oi2, of2 = np.empty((NSER, 6), np.int64), np.empty((NSER, 8))
    k2 = flush(cutoff, W, gap, si, sf, oi2, of2)
    return np.vstack([oi[:k], oi2[:k2]]), np.vstack([of[:k], of2[:k2]])


def reference_windows(s, ts, v, q, delta):
    """Plain per-series implementation of the documented window semantics."""
    out = []
    for sid in range(NSER):
        rows = [i for i in range(len(s)) if s[i] == sid]
        cur = None
        last_ts = None
        win = None

        def close(sid, cur, win):
            good = win["vals"]
            end = cur + W
            tw = win["tw"]
            if win["inorder"]:
                hold = min(end - win["last_ts"], GAP)
                tw = (tw[0] + win["last"] * hold, tw[1] + hold)
            c = len(good)
            if c:
                mean = sum(good) / c
                stats = [min(good), max(good), mean, tw[0] / tw[1] if tw[1] > 0 else win["last"],
                         math.sqrt(sum((x - mean) * (x - mean) for x in good) / c), win["first"], win["last"]]
            else:
                stats = [math.nan] * 7
            out.append(([sid, cur, c, win["gaps"], win["rej"], win["late"]], stats + [win["delta"]]))

        for i in rows:
            ws = (int(ts[i]) // W) * W
            if cur is None or ws > cur:
                if cur is not None:
                    close(sid, cur, win)
                cur = ws
                win = {"vals": [], "tw": (0.0, 0.0), "gaps": 0, "rej": 0, "late": 0, "inorder": 0,
                       "first": math.nan, "last": math.nan, "last_ts": None, "delta": 0.0}
            elif ws < cur:
                win["late"] += 1
                continue
            x = float(v[i])
            if not math.isfinite(x) or q[i] & 1:
                win["rej"] += 1
                continue
            win["vals"].append(x)
            if math.isfinite(delta[i]):
                win["delta"] += float(delta[i])
            t = int(ts[i])
            if last_ts is None or t >= last_ts:
                if win["inorder"]:
                    dt = t - last_ts
                    win["tw"] = (win["tw"][0] + win["last"] * min(dt, GAP), win["tw"][1] + min(dt, GAP))
                    win["gaps"] += dt > GAP
                else:
                    win["gaps"] += last_ts is not None and t - last_ts > GAP
                    win["first"] = x
                win["inorder"] += 1
                win["last"] = x
                win["last_ts"] = t
                last_ts = t
        if cur is not None:
            close(sid, cur, win)
    return out


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 5e-324]),
)
rows = st.lists(
    st.tuples(st.integers(0, NSER - 1), st.integers(0, 400_000), values, st.sampled_from([0, 0, 0, 1, 2])),
    max_size=60,
)


def columns(data, sort=True):
    if sort:  # mostly in order per series, with some out-of-order rows kept by the caller
        data = sorted(data, key=lambda r: r[1])
    s = np.array([r[0] for r in data], np.int32)
    ts = np.array([r[1] for r in data], np.int64) + 1_700_000_000_000
    v = np.array([r[2] for r in data], np.float64)
    q = np.array([r[3] for r in data], np.uint32)
    return s, ts, v, q


def same(a, b):
    return np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True) or np.array_equal(a, b, equal_nan=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.booleans())
def test_windows_match_python_and_reference(data, in_order):
    s, ts, v, q = columns(data, sort=in_order)
    delta = np.where(np.arange(len(s)) % 3 == 0, 0.5, np.nan)
    cutoff = int(ts.max()) + 10 * W if len(ts) else 0
    ji, jf = run_windows(window.window_step, window.window_flush, s, ts, v, q, delta, cutoff)
    pi, pf = run_windows(py_func(window.window_step), py_func(window.window_flush), s, ts, v, q, delta, cutoff)
    assert np.array_equal(ji, pi)
    assert np.array_equal(jf, pf, equal_nan=True)
    ref = reference_windows(s, ts, v, q, delta)
    key = lambda r: (r[0][0], r[0][1])  # noqa: E731
    ref = sorted(ref, key=key)
    order = np.lexsort((ji[:, 1], ji[:, 0])) if len(ji) else []
    assert len(ref) == len(ji)
    finite = np.abs(v[np.isfinite(v)])
    tol = 1e-9 * (float(finite.max()) if finite.size else 1.0) + 1e-9  # float rounding at the data's scale
    for (ri, rf), j in zip(ref, order, strict=True):
        assert list(ji[j]) == ri
        with np.errstate(all="ignore"):
            for a, b in zip(jf[j], rf, strict=True):
                assert (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=tol) \
                    or not math.isfinite(b), (jf[j], rf)


def test_window_single_sample_and_gap_counting():
    s = np.zeros(4, np.int32)
    t0 = 1_700_000_040_000  # a minute boundary
    ts = np.array([t0 + 1000, t0 + 2000, t0 + 30_000, t0 + 31_000], np.int64)  # 28 s gap
    v = np.array([1.0, 3.0, 5.0, 7.0])
    oi, of = run_windows(window.window_step, window.window_flush, s, ts, v, np.zeros(4, np.uint32), np.full(4, np.nan), t0 + W)
    assert oi.tolist() == [[0, t0, 4, 1, 0, 0]]
    mn, mx, mean, twa, std, first, last, _ = of[0]
    assert (mn, mx, mean, first, last) == (1.0, 7.0, 4.0, 1.0, 7.0)
    # holds: 1 for 1 s, 3 for 5 s (capped at the gap), 5 for 1 s, 7 for 5 s (capped, to the window end)
    assert twa == pytest.approx((1 * 1 + 3 * 5 + 5 * 1 + 7 * 5) / 12)
    assert std == pytest.approx(math.sqrt(5.0))


def test_flush_without_data_closes_only_ended_windows():
    si, sf = window.new_state(2)
    gap = np.full(2, GAP, np.int64)
    oi, of = np.empty((2, 6), np.int64), np.empty((2, 8))
    s = np.array([0, 1], np.int32)
    ts = np.array([0, 90_000], np.int64)
    window.window_step(s, ts, np.ones(2), np.zeros(2, np.uint32), np.full(2, np.nan), np.uint32(1), W, gap, si, sf, oi, of)
    assert window.window_flush(59_999, W, gap, si, sf, oi, of) == 0
    assert window.window_flush(60_000, W, gap, si, sf, oi, of) == 1 and oi[0, 0] == 0
    assert window.window_flush(120_000, W, gap, si, sf, oi, of) == 1 and oi[0, 0] == 1
    assert window.window_flush(10**13, W, gap, si, sf, oi, of) == 0


def run_counters(fn, mode, s, ts, v, rollover, rise=np.inf):
    n = len(s)
    ci, cf = counters.new_state(2)
    d = np.empty(n)
    q = np.zeros(n, np.uint32)
    since = np.empty(n, np.int64)
    fn(s, ts, v, q, np.full(2, mode, np.int8), np.full(2, rollover), np.full(2, 1000.0), np.full(2, rise),
       np.full(2, 10_000, np.int64), ci, cf, d, since)
    return d, q, ci, since


def test_counter_rollover_reset_and_glitch():
    v = np.array([4294967290.0, 4294967295.0, 3.0, 10.0, 2.0, 5.0, 1e9, 6.0])
    s = np.zeros(len(v), np.int32)
    ts = np.arange(len(v), dtype=np.int64) * 1000 + 1
    for fn in (counters.counter_step, py_func(counters.counter_step)):
        d, q, ci, _ = run_counters(fn, counters.MODE_RESTARTS, s, ts, v, 4294967296.0)
        assert np.isnan(d[0])
        assert d[1:6].tolist() == [5.0, 4.0, 7.0, 2.0, 3.0]  # wrap 2^32, then a session restart counted from 0
        assert np.isnan(d[6]) and q[6] & Quality.SPIKE  # implausible jump rejected
        assert d[7] == 1.0
        assert ci[0, counters.C_ROLLOVERS] == 1 and ci[0, counters.C_RESETS] == 1


def test_counter_glitch_to_zero_is_flagged_and_the_total_continues():
    v = np.array([50_000.0, 50_000.5, 0.0, 50_001.0, 50_001.5])  # one torn read of 0
    s = np.zeros(len(v), np.int32)
    ts = np.arange(len(v), dtype=np.int64) * 1000 + 1
    for fn in (counters.counter_step, py_func(counters.counter_step)):
        d, q, ci, _ = run_counters(fn, counters.MODE_COUNTER, s, ts, v, 0.0)
        assert np.isnan(d[2]) and q[2] == Quality.IMPLAUSIBLE  # no reset, no negative delta
        assert d[1] == 0.5 and d[3] == 0.5 and d[4] == 0.5  # continues from the old total
        assert not q[[0, 1, 3, 4]].any()
        assert ci[0, counters.C_RESETS] == 0


def test_counter_meter_swap_becomes_the_new_baseline_after_three_reads():
    v = np.array([50_000.0, 50_000.5, 3.0, 3.5, 4.0, 4.5, 5.0])  # a new meter from the third read on
    s = np.zeros(len(v), np.int32)
    ts = np.arange(len(v), dtype=np.int64) * 1000 + 1
    for fn in (counters.counter_step, py_func(counters.counter_step)):
        d, q, ci, _ = run_counters(fn, counters.MODE_COUNTER, s, ts, v, 0.0)
        assert np.isnan(d[2:5]).all() and (q[2:5] == Quality.IMPLAUSIBLE).all()  # unconfirmed, then the new baseline
        assert d[5] == 0.5 and d[6] == 0.5 and not q[5:].any()
        assert np.nansum(d) == 1.5  # never a huge negative (or positive) delta
        assert ci[0, counters.C_RESETS] == 1


def test_counter_backwards_reads_that_disagree_never_become_a_baseline():
    v = np.array([100.0, 0.0, 7.0, 0.0, 7.0, 0.0, 101.0])  # flapping garbage, then the meter again
    s = np.zeros(len(v), np.int32)
    ts = np.arange(len(v), dtype=np.int64) * 1000 + 1
    d, q, ci, _ = run_counters(counters.counter_step, counters.MODE_COUNTER, s, ts, v, 0.0)
    assert (q[1:6] == Quality.IMPLAUSIBLE).all() and np.isnan(d[1:6]).all()
    assert d[6] == 1.0 and ci[0, counters.C_RESETS] == 0


def test_power_integration_trapezoid_and_gap():
    s = np.zeros(4, np.int32)
    ts = np.array([0, 3_600_000 // 2, 3_600_000, 3_600_000 + 60_000], np.int64)
    v = np.array([1000.0, 3000.0, 1000.0, 1000.0])
    ci, cf = counters.new_state(1)
    d = np.empty(4)
    counters.counter_step(s, ts, v, np.zeros(4, np.uint32), np.array([counters.MODE_INTEGRATE], np.int8), np.zeros(1),
                          np.full(1, np.inf), np.full(1, np.inf), np.array([3_600_000], np.int64), ci, cf, d,
                          np.empty(4, np.int64))
    assert np.isnan(d[0])
    assert d[1] == pytest.approx(1000.0) and d[2] == pytest.approx(1000.0)  # W x h
    assert d[3] == pytest.approx(1000.0 / 60)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 50), values), max_size=50), st.sampled_from([1, 2, 3]))
def test_counters_jit_equals_python(data, mode):
    s = np.array([r[0] for r in data], np.int32)
    ts = np.cumsum(np.array([r[1] for r in data], np.int64)) * 100
    v = np.array([r[2] for r in data])
    for rise in (np.inf, 0.01):
        a = run_counters(counters.counter_step, mode, s, ts, v, 65536.0, rise)
        b = run_counters(py_func(counters.counter_step), mode, s, ts, v, 65536.0, rise)
        assert np.array_equal(a[0], b[0], equal_nan=True) and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))


def test_counter_step_beyond_the_physical_bound_is_held_and_a_stuck_stretch_accrues_from_its_start():
    # 1 unit per second at most; a glitch of +500, then a register stuck for 10 s that catches up by 8
    v = np.array([100.0, 101.0, 601.0, 102.0, 102.0, 102.0, 102.0, 110.0, 111.0])
    ts = np.array([0, 1, 2, 3, 4, 8, 12, 13, 14], np.int64) * 1000 + 1
    s = np.zeros(len(v), np.int32)
    for fn in (counters.counter_step, py_func(counters.counter_step)):
        d, q, ci, since = run_counters(fn, counters.MODE_COUNTER, s, ts, v, 0.0, rise=1.0 / 1000)
        assert q[2] == Quality.SPIKE and np.isnan(d[2]) and not q[[0, 1, 3, 4, 5, 6, 7, 8]].any()
        assert d[3] == 1.0 and d[7] == 8.0 and since[7] == ts[3]  # accrued since the register last rose
        assert ci[0, counters.C_RESETS] == 0


def run_quality(fn, s, ts, v):
    n = len(s)
    q = np.zeros(n, np.uint32)
    qi, qf = quality.new_state(2)
    lo, hi = np.array([0.0, -np.inf]), np.array([100.0, np.inf])
    fn(s, ts, v, q, 10_000, lo, hi, np.array([3, 0]), np.array([0.0, 0.0]), np.array([5.0, np.inf]),
       np.array([8_000, 0]), qi, qf)
    return q


def test_quality_flags():
    s = np.zeros(7, np.int32)
    ts = np.array([1000, 2000, 3000, 4000, 5000, 6000, 7000], np.int64)
    v = np.array([10.0, 10.0, 10.0, 150.0, 20.0, np.nan, 21.0])
    q = run_quality(quality.quality_step, s, ts, v)
    Q = Quality
    assert q[0] == Q.STALE  # 9 s old on arrival, stale_after 8 s
    assert q[1] == 0 and q[2] == Q.STUCK  # third equal sample
    assert q[3] == Q.OUT_OF_RANGE | Q.RATE_OF_CHANGE
    assert q[4] == Q.RATE_OF_CHANGE  # 130/s down
    assert q[5] == Q.OUT_OF_RANGE  # NaN is never in range
    assert q[6] == 0  # 1 per s from the last finite value


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3000), values), max_size=50))
def test_quality_jit_equals_python(data):
    s = np.array([r[0] for r in data], np.int32)
    ts = np.cumsum(np.array([r[1] for r in data], np.int64))
    v = np.array([r[2] for r in data])
    with np.errstate(all="ignore"):
        assert np.array_equal(run_quality(quality.quality_step, s, ts, v), run_quality(py_func(quality.quality_step), s, ts, v))


DET = detect.params(alpha=0.05, warmup=5, threshold=0.6, release=0.3, quiet=3, history=50, range_margin=0.01)


def run_detect(fn, s, v, prm=DET, n_series=2):
    n = len(s)
    q = np.zeros(n, np.uint32)
    state = detect.new_state(n_series)
    score, ev = np.empty(n), np.zeros(n, np.int8)
    fn(s, minutes(n), v, q, np.ones(n_series, np.bool_), np.zeros(n_series), np.zeros(n_series), *detect.UTC, state, prm,
       score, ev)
    return score, ev, q


def minutes(n, start=1_704_067_200_000):
    """Timestamps one minute apart from 2024-01-01 UTC."""
    return start + np.arange(n, dtype=np.int64) * 60_000


def shipped_params(**over):
    from agent.processing.config import AnomalyConfig

    a = AnomalyConfig()
    kw = dict(alpha=a.alpha, warmup=a.warmup_samples, threshold=a.threshold, release=a.release,
              quiet=a.quiet_samples, history=a.history_samples, range_margin=a.range_margin)
    kw.update(over)
    return detect.params(**kw)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), values), max_size=80))
def test_detector_jit_equals_python(data):
    s = np.array([r[0] for r in data], np.int32)
    v = np.array([r[1] for r in data])
    with np.errstate(all="ignore"):
        a, b = run_detect(detect.detect_step, s, v), run_detect(py_func(detect.detect_step), s, v)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), values, st.sampled_from([0, 0, 0, 1, 512, 8])), max_size=80),
       st.floats(0, 5), st.floats(0, 0.5))
def test_detector_with_significance_and_skipped_readings_jit_equals_python(data, sig, rel):
    s = np.array([r[0] for r in data], np.int32)
    v = np.array([r[1] for r in data])
    q0 = np.array([r[2] for r in data], np.uint32)
    prm = shipped_params(warmup=5, skip=1 | 512)
    out = []
    for fn in (detect.detect_step, py_func(detect.detect_step)):
        q = q0.copy()
        state, score, ev = detect.new_state(2), np.empty(len(s)), np.zeros(len(s), np.int8)
        with np.errstate(all="ignore"):
            fn(s, minutes(len(s)), v, q, np.ones(2, np.bool_), np.array([sig, 0.0]), np.array([0.0, rel]), *detect.UTC, state, prm,
               score, ev)
        out.append((q, score, ev, state))
    for x, y in zip(*out, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def test_flagged_readings_neither_score_nor_teach():
    rng = np.random.default_rng(3)
    v = np.concatenate([20 + rng.normal(0, 0.3, 400), [65535.0], 20 + rng.normal(0, 0.3, 20), [60.0]])
    q = np.zeros(len(v), np.uint32)
    q[400] = Quality.OUT_OF_RANGE
    n = len(v)
    score, ev = np.empty(n), np.zeros(n, np.int8)
    detect.detect_step(np.zeros(n, np.int32), minutes(n), v, q, np.ones(1, np.bool_), np.zeros(1), np.zeros(1), *detect.UTC,
                       detect.new_state(1),
                       shipped_params(skip=int(Quality.OUT_OF_RANGE)), score, ev)
    assert score[400] == 0.0 and not q[400] & Quality.ANOMALY  # not scored
    assert score[-1] == 1.0 and ev[-1] == 1  # 60 is beyond everything learnt: 65535 was not learnt


def test_a_change_below_the_significant_one_never_scores():
    v = np.concatenate([np.full(300, 1000.0), np.full(100, 1020.0)])  # a 2 % step on a perfectly quiet series
    n = len(v)
    for sig, rel, fires in ((0.0, 0.0, True), (30.0, 0.0, False), (0.0, 0.05, False)):
        score, ev = np.empty(n), np.zeros(n, np.int8)
        detect.detect_step(np.zeros(n, np.int32), minutes(n), v, np.zeros(n, np.uint32), np.ones(1, np.bool_), np.array([sig]),
                           np.array([rel]), *detect.UTC, detect.new_state(1), shipped_params(), score, ev)
        assert bool((ev == 1).any()) is fires, (sig, rel)


def noisy_daily(n, seed, *, base=20.0, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return base + 3 * np.sin(2 * np.pi * t / 288) + rng.normal(0, noise, n)


def test_detector_fires_once_on_a_spike_and_ends():
    v = noisy_daily(6000, 1)
    v[5000] = 45.0
    score, ev, q = run_detect(detect.detect_step, np.zeros(6000, np.int32), v, shipped_params(), 1)
    assert score[1000:5000].max() < 0.5  # once a daily cycle is known, swing and noise do not fire
    assert ev[5000] == 1 and q[5000] & Quality.ANOMALY
    assert list(np.flatnonzero(ev[1000:] == 1) + 1000) == [5000]
    assert (ev[5001:] == 2).sum() == 1  # one end event after it calms down


def test_one_disturbance_gives_one_start_a_later_one_its_own():
    """Two spikes 15 readings apart, the second higher, are one disturbance (an event lasts at least MIN_EVENT readings, so it
    cannot end between them and start again); a larger one 200 readings later is a new event."""
    v = noisy_daily(6000, 1)
    v[5000], v[5015] = 45.0, 52.0
    v[5200] = 60.0
    _, ev, _ = run_detect(detect.detect_step, np.zeros(6000, np.int32), v, shipped_params(), 1)
    assert list(np.flatnonzero(ev[1000:] == 1) + 1000) == [5000, 5200]
    _, ev, _ = run_detect(detect.detect_step, np.zeros(6000, np.int32), v, shipped_params(min_event=0), 1)
    assert list(np.flatnonzero(ev[1000:] == 1) + 1000) == [5000, 5015, 5200]  # without it: two starts for one


def test_detector_catches_a_second_smaller_anomaly_after_a_large_one():
    v = noisy_daily(8000, 3)
    v[4000:4010] += 60.0  # a large excursion sets a record
    v[6000:6020] -= 8.0  # a later, much smaller dip is still news
    _, ev, _ = run_detect(detect.detect_step, np.zeros(8000, np.int32), v, shipped_params(), 1)
    starts = list(np.flatnonzero(ev[1000:] == 1) + 1000)
    assert len(starts) == 2 and starts[0] == 4000 and 6000 <= starts[1] < 6010


def test_detector_score_is_scale_invariant():
    v = noisy_daily(4000, 5)
    v[3000] += 6.0
    a, ea, _ = run_detect(detect.detect_step, np.zeros(4000, np.int32), v, shipped_params(), 1)
    b, eb, _ = run_detect(detect.detect_step, np.zeros(4000, np.int32), v * 1000 + 7, shipped_params(), 1)
    assert np.allclose(a, b, atol=1e-6)
    assert np.array_equal(ea, eb) and ea[3000] == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(200, 1500), st.integers(0, 2**31))
def test_detector_is_causal(cut, seed):
    """Changing the future never changes past scores."""
    v = noisy_daily(2000, seed % 1000)
    w = v.copy()
    w[cut:] = np.random.default_rng(seed).normal(500, 100, 2000 - cut)
    a, ea, qa = run_detect(detect.detect_step, np.zeros(2000, np.int32), v, shipped_params(), 1)
    b, eb, qb = run_detect(detect.detect_step, np.zeros(2000, np.int32), w, shipped_params(), 1)
    assert np.array_equal(a[:cut], b[:cut]) and np.array_equal(ea[:cut], eb[:cut]) and np.array_equal(qa[:cut], qb[:cut])


def test_detector_state_is_fixed_and_small():
    st_ = detect.new_state(1, shipped_params())
    before = st_.shape
    run_detect(detect.detect_step, np.zeros(50_000, np.int32), noisy_daily(50_000, 7), shipped_params(), 1)
    # 184 numbers (a 48-slot time-of-day baseline and the change point's 12 among them) and 334 for pattern novelty's
    # prototypes per series
    assert st_.shape == before and st_.nbytes <= 4150


def test_detector_scores_relative_to_each_series_own_history():
    # a noisy and a quiet series interleaved: the same relative jump scores alike
    rng = np.random.default_rng(2)
    n = 6000
    s = np.tile(np.array([0, 1], np.int32), n)
    v = np.empty(2 * n)
    v[0::2] = 1000 + rng.normal(0, 50, n)
    v[1::2] = 5 + rng.normal(0, 0.01, n)
    v[2 * 5000] = 1000 + 50 * 40  # 40 sigma on series 0
    v[2 * 5050 + 1] = 5 + 0.01 * 40  # 40 sigma on series 1
    score, ev, _ = run_detect(detect.detect_step, s, v, shipped_params(), 2)
    assert list(np.flatnonzero(ev[8000:] == 1) + 8000) == [10000, 10101]
    assert abs(score[10000] - score[10101]) < 0.1


def test_detector_false_alarms_on_pure_noise_are_rare():
    rng = np.random.default_rng(9)
    _, ev, _ = run_detect(detect.detect_step, np.zeros(100_000, np.int32), rng.normal(0, 1, 100_000), shipped_params(), 1)
    assert (ev == 1).sum() <= 20  # mostly new extremes while the range is being learnt
    assert (ev[50_000:] == 1).sum() <= 5


def test_detector_level_shift_fires_once_at_onset():
    rng = np.random.default_rng(4)
    v = 50 + rng.normal(0, 1, 6000)
    v[5000:] += 30
    _, ev, _ = run_detect(detect.detect_step, np.zeros(6000, np.int32), v, shipped_params(), 1)
    assert list(np.flatnonzero(ev[4000:] == 1) + 4000) == [5000]
