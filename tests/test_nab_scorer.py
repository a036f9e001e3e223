"""NAB-style scorer against hand-computed values (20 rows, probation 3, one window rows 10..14)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bench import nab

STD = nab.Profile(tp=1.0, fp=0.11, fn=1.0)
WIN = [(10, 14)]


def test_sigmoid_and_probation():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)  # 2/(1+e^-5) - 1
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(3.5) == -1.0
    assert nab.probation_length(20) == 3 and nab.probation_length(100_000) == 750


def test_point_weights():
    w, label = nab.point_weights(20, WIN, STD)
    assert list(label[:3]) == [-2, -2, -2] and label[10] == 0 and label[15] == -1
    assert w[10] == pytest.approx(1.0)  # first row of the window earns the full tp weight
    assert w[12] == pytest.approx(0.905148 / 0.986614, abs=1e-5)  # position -3/5
    assert w[5] == pytest.approx(-0.11)  # before any window
    assert w[15] == pytest.approx(-0.11 * 0.554601, abs=1e-5)  # 1/4 of a window past it


def test_threshold_curve_and_normalisation():
    s = np.zeros(20)
    s[10], s[5], s[12] = 0.9, 0.8, 0.7
    th, val = nab.score_curve(s, WIN, STD)
    assert th[:3].tolist() == [0.9, 0.8, 0.7]
    assert val[:3] == pytest.approx([1.0, 0.89, 0.89])  # later detection in the same window adds nothing
    f = nab.LabelledFile("f", s, np.arange(20).astype("datetime64[s]"), WIN)
    r = nab.evaluate([f], [s], STD)
    assert r["threshold"] == 0.9 and r["score"] == pytest.approx(100.0)
    curve = nab.score_curve(s, WIN, STD)
    assert nab.file_score_at(curve, 0.95, -1.0) == -1.0  # nothing detected: the window is missed
    assert nab.file_score_at(curve, 0.8, -1.0) == pytest.approx(0.89)
    late = np.zeros(20)
    late[5], late[12] = 1.0, 1.0
    r = nab.evaluate([f], [late], STD)
    assert r["score"] == pytest.approx(100 * (0.917430 - 0.11 + 1) / 2, abs=1e-3)
