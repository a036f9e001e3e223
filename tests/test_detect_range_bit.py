"""The range test on a young, noise-dominated series, and what the ANOMALY quality bit marks: where a size
anomaly begins and every value beyond anything the series has shown, not the ordinary-looking rest of an event."""

from __future__ import annotations

import numpy as np

from agent.model import Quality
from agent.processing import kernels
from agent.processing.jit import py_func
from agent.processing.kernels.detect import EV_END
from tests.detect_helpers import run_series, shipped


def run(v, prm=None, fn=None):
    ts = 1_704_067_200_000 + np.arange(len(v), dtype=np.int64) * 60_000
    score, ev, q, _ = run_series(v, ts, prm=prm, fn=fn)
    return score, ev, (q & int(Quality.ANOMALY)) != 0


def starts(ev):
    return int(((ev != 0) & (ev != EV_END)).sum())


def test_new_extremes_of_a_young_noisy_series_raise_no_event():
    """Pure noise makes a new extreme now and then (chance 2 / (n + 1) per reading); while its range is young that
    is no news unless the value is also an outlier by the baseline's own rule."""
    total = total_without = 0
    for seed in range(20):
        v = np.random.default_rng(seed).normal(50.0, 2.0, 500)
        total += starts(run(v)[1])
        total_without += starts(run(v, shipped(young=False))[1])
    assert total_without >= 10  # without the rule, the noise's own extremes raise events
    assert total <= total_without // 4


def test_a_gross_value_on_a_young_noisy_series_and_a_modest_one_on_a_wide_ranging_series_still_fire():
    rng = np.random.default_rng(7)
    noise = np.concatenate([rng.normal(50.0, 2.0, 300), [75.0]])  # 12 standard deviations out
    assert run(noise)[1][-1] == 1
    # a level with dips far below it: its range is far wider than its spread, so a new high means something
    wide = 100.0 + rng.normal(0.0, 1.0, 400)
    wide[::50] = 80.0
    wide = np.concatenate([wide, [wide.max() + 0.3]])
    assert run(wide)[1][-1] == 1
    assert run(wide, shipped(young=False))[1][-1] == 1


def test_the_bit_marks_where_a_step_begins_and_new_extremes_not_the_held_level():
    rng = np.random.default_rng(11)
    t = np.arange(3000)
    v = 20 + 3 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.3, 3000)
    v[2000:] += 12.0  # a step to a level never seen, then held
    score, ev, bit = run(v)
    assert ev[2000] == 1 and bit[2000]
    later = np.nonzero(bit[2001:])[0] + 2001
    assert all(v[r] > v[:r].max() for r in later)  # after the start, only values beyond everything before
    held = v.copy()
    held[2000:2200] = 40.0  # the same step without noise: nothing after its first reading is news
    bit = run(held)[2]
    assert bit[2000] and not bit[2001:2200].any()
    # a spike later, beyond everything seen, is marked
    v2 = v.copy()
    v2[2800] = 60.0
    assert run(v2)[2][2800]


def test_range_rule_and_bit_jit_equal_python_and_scale_invariant():
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.normal(50.0, 2.0, 600), rng.normal(60.0, 2.0, 200)])
    a = run(v)
    b = run(v, fn=py_func(kernels.detect.detect_step))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    c = run(v * 1000.0 + 7.0)
    assert np.array_equal(a[1], c[1]) and np.array_equal(a[2], c[2])


def test_a_series_constant_through_its_warm_up_still_learns_its_baseline():
    """A meter at 0 W through the warm-up (a charger with no car, a pump off) has no deviation to clip by: its
    baseline must still follow the level it settles at, so the move raises one event and the new level none."""
    rng = np.random.default_rng(1)
    for zero in (0.0, 230.0):
        v = np.concatenate([np.full(200, zero), zero + 50.0 + rng.normal(0.0, 1.0, 3000)])
        for fn in (None, py_func(kernels.detect.detect_step)):
            ts = 1_704_067_200_000 + np.arange(len(v), dtype=np.int64) * 2_000
            score, ev, _, st = run_series(v, ts, fn=fn)
            assert abs(st[0, kernels.detect.D_MEAN] - (zero + 50.0)) < 1.0  # the baseline followed
            assert starts(ev[:250]) == 1 and starts(ev[250:]) == 0, np.flatnonzero(ev)
            assert (score[1000:] < 0.5).all()
