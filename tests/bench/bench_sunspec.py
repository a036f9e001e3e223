"""What SunSpec support costs at start-up and per poll.

1. Import + model definitions, each in a fresh interpreter that has loaded the agent's contract and
   numpy (the daemon has both before any driver), median of --runs: our driver, which reads
   only pysunspec2's JSON model files for the models a config names, against importing pysunspec2's
   own Modbus client and building its model definitions (``sunspec2.modbus.client``).
2. One poll of a hybrid inverter (models 103, 123, 124, 802, 203) over Modbus TCP against the
   simulator: requests and registers per poll, and time per poll against a bare 2-register read.

    python tests/bench/bench_sunspec.py [--runs 7] [--polls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = (1, 103, 123, 124, 802, 203)
OURS = f"import drivers.sunspec.driver as d, drivers.sunspec.models as m; [m.model(i) for i in {MODELS!r}]"
THEIRS = ("import sunspec2.modbus.client as c, sunspec2.device as dev; "
          f"[dev.get_model_def(i) for i in {MODELS!r}]")
TIMED = ("import agent.contract, numpy, time; t = time.perf_counter(); {code}; "
         "print(time.perf_counter() - t)")  # the daemon has the contract and numpy before any driver


def cold(code: str, runs: int) -> float:
    """Median seconds ``code`` takes in a fresh interpreter that has loaded the contract and numpy."""
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", TIMED.format(code=code)], check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def polls(n: int) -> tuple[float, float, int, int]:
    from agent.bus.base import BusPool
    from agent.bus.kinds import LINE_KINDS
    from agent.bus.modbus_config import ModbusTcpLine
    from agent.driver import DriverContext
    from drivers.sunspec import SunSpecConfig, SunSpecDriver
    from drivers.sunspec.sim import start

    port = free_port()
    h = await start(tcp=f"127.0.0.1:{port}")
    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)}, LINE_KINDS)
    cfg = SunSpecConfig(name="inv", type="sunspec", line="lan", models=[103, 123, 124, 802, 203])
    drv = SunSpecDriver(cfg, DriverContext("gw", Path("."), pool))
    await drv.read()
    bus = pool.get("lan")
    t0 = time.perf_counter()
    for _ in range(n):
        await drv.read()
    poll = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        await bus.read_registers(1, fc=3, address=40000, count=2)
    bare = (time.perf_counter() - t0) / n
    from drivers.sunspec.models import model
    regs = sum(2 + model(m).length for m in cfg.models)
    reqs = sum(-(-(2 + model(m).length) // 125) for m in cfg.models)
    await pool.close()
    await h.stop()
    return poll, bare, reqs, regs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--polls", type=int, default=200)
    a = ap.parse_args()
    ours = cold(OURS, a.runs)
    theirs = cold(THEIRS, a.runs)
    print(f"our driver + {len(MODELS)} JSON model definitions    {ours * 1000:7.1f} ms")
    print(f"pysunspec2 client + {len(MODELS)} model definitions  {theirs * 1000:7.1f} ms  (x{theirs / ours:.2f} ours)")
    poll, bare, reqs, regs = asyncio.run(polls(a.polls))
    print(f"poll of models 103,123,124,802,203: {reqs} requests, {regs} registers, {poll * 1000:.2f} ms "
          f"= x{poll / bare:.2f} a bare 2-register read ({bare * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
