"""The anomaly detector's kernel on one series with the shipped settings, for the detector's tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import numpy as np  # noqa: E402

from agent.processing import kernels  # noqa: E402
from agent.processing.config import AnomalyConfig  # noqa: E402
from agent.processing.jit import compiled  # noqa: E402

try:
    detect = compiled(kernels.detect)
except ImportError:  # no numba: both builds are the Python one
    detect = kernels.detect


def shipped(**over):
    """The kernel's parameters from the shipped AnomalyConfig, with ``over`` replacing some."""
    a = AnomalyConfig()
    kw = dict(alpha=a.alpha, warmup=a.warmup_samples, threshold=a.threshold, release=a.release,
              quiet=a.quiet_samples, history=a.history_samples, range_margin=a.range_margin)
    kw.update(over)
    return kernels.detect.params(**kw)


def run_series(v, ts, tz=kernels.detect.UTC, prm=None, fn=None):
    """One series through ``fn`` (the compiled detect_step by default): (score, event, quality, state)."""
    n = len(v)
    q = np.zeros(n, np.uint32)
    prm = shipped() if prm is None else prm
    st = kernels.detect.new_state(1, prm)
    score, ev = np.empty(n), np.zeros(n, np.int8)
    (fn or detect.detect_step)(np.zeros(n, np.int32), np.asarray(ts, np.int64), np.asarray(v, np.float64), q,
                               np.ones(1, np.bool_), np.zeros(1), np.zeros(1), *tz, st, prm,
                               score, ev)
    return score, ev, q, st
