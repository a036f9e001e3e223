"""Compile (and cache) every kernel by running each once on a tiny batch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import jit


def warm(state_dir: Path | None, *, compiled: bool | None = None, build_aot: bool | None = None) -> dict:
    """Returns cache dir, JIT status, whether an ahead-of-time build is ready, and seconds spent
    importing and compiling/loading kernels.

    ``compiled`` None: the numba builds when numba is installed, else the Python kernels.
    ``build_aot`` None: also build the ahead-of-time kernels (in a separate process) when ``compiled``
    is None and numba is installed (what `edge-agent warmup` does)."""
    t0 = time.perf_counter()
    cache = jit.configure_cache(state_dir)
    from .kernels import counters, detect, kernel_set, quality, window

    if build_aot is None:
        build_aot = compiled is None and jit.numba_available()
    if compiled is None:
        compiled = jit.numba_available()
    K = kernel_set(compiled=compiled)

    t1 = time.perf_counter()
    n = 4
    s = np.arange(n, dtype=np.int32)
    ts = np.arange(n, dtype=np.int64) * 1000
    v = np.linspace(0.0, 1.0, n)
    q = np.zeros(n, np.uint32)
    i64 = np.zeros(n, np.int64)
    f = np.zeros(n)
    inf = np.full(n, np.inf)
    qi, qf = quality.new_state(n)
    K.quality_step(s, ts, v, q, 0, -inf, inf, i64, f, inf, i64, qi, qf)
    ci, cf = counters.new_state(n)
    d = np.empty(n)
    K.counter_step(s, ts, v, q, np.zeros(n, np.int8), f, inf, inf, i64 + 1, ci, cf, d, np.empty(n, np.int64))
    st = detect.new_state(n)
    prm = detect.params(alpha=0.01, warmup=2, threshold=0.9, release=0.5, quiet=3, history=100, range_margin=0.01)
    K.detect_step(s, ts, v, q, np.ones(n, np.bool_), f, f, *detect.UTC, st, prm, np.empty(n), np.zeros(n, np.int8))
    si, sf = window.new_state(n)
    oi, of = np.empty((n, K.OUT_I), np.int64), np.empty((n, K.OUT_F))
    K.window_step(s, ts, v, q, d, np.uint32(1), 60_000, i64 + 1, si, sf, oi, of)
    K.window_flush(10**12, 60_000, i64 + 1, si, sf, oi, of)
    ready, why = False, None
    if build_aot and cache is not None:
        from . import aot

        ready = aot.load(cache) is not None
        if not ready:
            why = aot.build_in_subprocess(cache)
            ready = why is None and aot.load(cache) is not None
    t2 = time.perf_counter()
    return {"aot": ready, "aot_error": why, "cache_dir": str(cache) if cache else None, "jit": compiled and not jit.jit_disabled_by_env(),
            "import_s": round(t1 - t0, 3), "compile_s": round(t2 - t1, 3)}
