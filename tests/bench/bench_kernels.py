"""Kernel throughput (samples/s) vs a numpy baseline and vs np.copyto (memory-bandwidth ceiling).

Run: python tests/bench/bench_kernels.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from agent.processing import kernels
from agent.processing.jit import compiled

detect, window = compiled(kernels.detect), compiled(kernels.window)  # the numba builds the agent runs
DET = kernels.detect.params(alpha=0.003, warmup=150, threshold=0.5, release=0.3, quiet=10, history=8640,
                            range_margin=0.01)

N, NSER, REPS = 2_000_000, 1000, 5


@numba.njit(cache=True)
def ewma_zscore(series, value, mean, var, alpha, out):
    for r in range(series.shape[0]):
        s = series[r]
        d = value[r] - mean[s]
        out[r] = d / np.sqrt(var[s] + 1e-12)
        mean[s] += alpha * d
        var[s] = (1 - alpha) * (var[s] + alpha * d * d)


def best(fn) -> float:
    fn()
    t = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> None:
    rng = np.random.default_rng(0)
    s = np.tile(np.arange(NSER, dtype=np.int32), N // NSER)
    ts = np.repeat(1_700_000_000_000 + np.arange(N // NSER, dtype=np.int64) * 1000, NSER)
    v = rng.normal(100, 5, N)
    q = np.zeros(N, np.uint32)
    delta = np.full(N, np.nan)
    gap = np.full(NSER, 5000, np.int64)
    dst = np.empty_like(v)

    def win():
        si, sf = window.new_state(NSER)
        oi, of = np.empty((N, 6), np.int64), np.empty((N, 8))
        window.window_step(s, ts, v, q, delta, np.uint32(1), 60_000, gap, si, sf, oi, of)

    def numpy_win():  # count/min/max/mean/std per (series, minute) with numpy group-bys
        key = s.astype(np.int64) * 1_000_000 + (ts // 60_000 - ts[0] // 60_000)
        u, inv = np.unique(key, return_inverse=True)
        c = np.bincount(inv)
        m = np.bincount(inv, v) / c
        sd = np.sqrt(np.maximum(np.bincount(inv, v * v) / c - m * m, 0))
        mn = np.full(u.shape[0], np.inf)
        np.minimum.at(mn, inv, v)
        mx = np.full(u.shape[0], -np.inf)
        np.maximum.at(mx, inv, v)
        return sd

    def zs():
        ewma_zscore(s, v, np.zeros(NSER), np.ones(NSER), 0.01, dst)

    def numpy_zs():  # vectorised z-score against a rolling (per-column) mean/std, one series per column
        m = v.reshape(-1, NSER)
        c = np.cumsum(m, 0)
        c2 = np.cumsum(m * m, 0)
        k = np.arange(1, m.shape[0] + 1)[:, None]
        mu = c / k
        return (m - mu) / np.sqrt(np.maximum(c2 / k - mu * mu, 1e-12))

    def det():
        st = detect.new_state(NSER)
        detect.detect_step(s, ts, v, q, np.ones(NSER, np.bool_), np.zeros(NSER), np.zeros(NSER), *detect.UTC, st, DET, dst,
                           np.zeros(N, np.int8))

    copy = best(lambda: np.copyto(dst, v))
    rows = [("np.copyto (bandwidth ceiling)", copy, None)]
    for name, fn, base in (("window stats (numba)", win, numpy_win), ("EWMA z-score (numba)", zs, numpy_zs),
                           ("detector (numba)", det, None)):
        t = best(fn)
        rows.append((name, t, best(base) if base else None))
    print(f"{N:,} samples, {NSER} series, numba {numba.__version__}, best of {REPS}")
    print(f"{'kernel':32} {'M samples/s':>12} {'x numpy':>9} {'/copyto':>9}")
    for name, t, base in rows:
        ratio = f"{base / t:8.1f}x" if base else "        -"
        print(f"{name:32} {N / t / 1e6:12.1f} {ratio} {copy / t:9.3f}")


if __name__ == "__main__":
    main()
