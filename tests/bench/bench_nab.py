"""NAB scores (standard / reward_low_FP_rate / reward_low_FN_rate) of each detector, one table.

Run: python tests/bench/bench_nab.py [path to NAB corpus, default ../shared/data/nab]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from agent.processing import nab
from agent.processing.kernels.detect import score_series

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


def ewma_z(v: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    out = np.zeros(len(v))
    m, var = v[0], 0.0
    for i, x in enumerate(v):
        z = abs(x - m) / np.sqrt(var + 1e-12)
        out[i] = z / (z + 3.0)
        d = x - m
        m += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return out


def windowed_gaussian(v: np.ndarray, w: int = 6400) -> np.ndarray:
    out = np.zeros(len(v))
    for i in range(1, len(v)):
        win = v[max(0, i - w):i]
        sd = win.std()
        z = abs(v[i] - win.mean()) / sd if sd > 0 else 0.0
        out[i] = float(1 - np.exp(-z / 3))
    return out


def main() -> None:
    files = nab.load_corpus(ROOT)
    profiles = nab.load_profiles(ROOT / "config" / "profiles.json")
    detectors = {
        "edge detector (warmup 150)": lambda v: score_series(v, alpha=0.01, warmup=150, decay=0.9999),
        "edge detector (config defaults)": lambda v: score_series(v, alpha=0.01, warmup=30, decay=0.9999),
        "EWMA z-score": ewma_z,
        "windowed Gaussian (ours, w=6400)": windowed_gaussian,
        "null": lambda v: np.zeros(len(v)),
    }
    score_series(files[0].values.copy(), alpha=0.01, warmup=30, decay=0.9999)  # compile outside the timing
    names = list(profiles)
    print(f"NAB corpus: {len(files)} files, {sum(len(f.values) for f in files):,} rows, "
          f"{sum(len(f.windows) for f in files)} windows; threshold optimised per profile")
    print(f"{'detector':34} " + " ".join(f"{n:>19}" for n in names) + "  threshold(std)  rows/s")
    for dname, fn in detectors.items():
        t0 = time.perf_counter()
        scores = [fn(f.values.copy()) for f in files]
        dt = time.perf_counter() - t0
        res = [nab.evaluate(files, scores, profiles[n]) for n in names]
        rate = sum(len(f.values) for f in files) / dt
        print(f"{dname:34} " + " ".join(f"{r['score']:19.1f}" for r in res) + f"  {res[0]['threshold']:14.3f}  {rate:,.0f}")
    print("published (standard): ARTime 74.9, Numenta HTM 70.5, CAD OSE 69.9, Windowed Gaussian 39.6")


if __name__ == "__main__":
    main()
