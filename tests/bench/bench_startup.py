"""Start-up cost of the kernels: cold compile, warm-cache load, and RSS, each in a fresh process.

Run: python tests/bench/bench_startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from agent.processing.warmup import warm
r = warm(Path(sys.argv[1]))
r["total_s"] = round(time.perf_counter() - t0, 3)
r["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps(r))
"""


def run(state: str, **env: str) -> tuple[dict, float]:
    e = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | env
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, state], capture_output=True, text=True, env=e, check=True)
    return json.loads(p.stdout), time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        cold, cold_wall = run(d)
        warm, warm_wall = run(d)
        nojit, nojit_wall = run(d + "/nojit", NUMBA_DISABLE_JIT="1")
    base = subprocess.run([sys.executable, "-c", "import resource, numpy; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                          capture_output=True, text=True, check=True)
    print(f"{'case':28} {'import s':>9} {'compile/load s':>15} {'process wall s':>15} {'max RSS MB':>11}")
    for name, r, wall in (("cold (empty cache)", cold, cold_wall), ("warm cache", warm, warm_wall),
                          ("NUMBA_DISABLE_JIT=1", nojit, nojit_wall)):
        print(f"{name:28} {r['import_s']:9.2f} {r['compile_s']:15.2f} {wall:15.2f} {r['rss_mb']:11.1f}")
    print(f"python+numpy alone: {float(base.stdout):.1f} MB RSS; warm/cold compile ratio {warm['compile_s'] / cold['compile_s']:.3f}")


if __name__ == "__main__":
    main()
