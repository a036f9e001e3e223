"""CJ/T 188 reads per second against the wire-time limit at 2400 baud (8E1), water and heat meters,
and the RSS the driver adds to the daemon.

The real driver reads 901F (one transaction carries every value) from the simulator on a pty.
Unpaced, the pty moves bytes at memory speed: the software cost per read. Paced, the simulator
answers only once the request and the reply would have crossed a line at that baud (11 bits a
byte, no meter turnaround). The computed limit is 1 / ((request + reply bytes) x 11 / baud).

    python tests/bench/bench_cjt188.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.simkit.conformance import SimDevice, build_driver
from drivers.cjt188 import SPEC, codec
from drivers.cjt188.sim import Cjt188Sim, Meter

ADDR = "12345678000001"


def frame_bytes(profile: str, wake_request: int = 4, wake_reply: int = 2) -> tuple[int, int]:
    m = Meter(ADDR, profile)
    return len(codec.read_request(m.meter_type, m.wire, 0, wake=wake_request)), len(m.reply(0, wake_reply))


async def measure(profile: str, pace: int | None, n: int) -> float:
    sim = await Cjt188Sim(meters=[Meter(ADDR, profile)], pace_baud=pace).start()
    with tempfile.TemporaryDirectory() as tmp:
        dev = SimDevice(device={"type": "cjt188", "line": "l", "address": ADDR, "profile": profile},
                        lines={"l": {"type": "serial", "port": sim.path, "baudrate": pace or 9600}})
        driver, pool = build_driver(SPEC, dev, Path(tmp))
        try:
            await driver.read()  # open the port
            t0 = time.perf_counter()
            for _ in range(n):
                await driver.read()
            return n / (time.perf_counter() - t0)
        finally:
            await pool.close()
            await sim.stop()


def import_rss_mb() -> float:
    code = ("import agent.contract, agent.bus.serial_port\n"
            "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
            "a = rss()\nimport drivers.cjt188\nprint((rss() - a) / 1e6)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**os.environ, "NUMBA_DISABLE_JIT": "1"}).stdout)


async def main() -> None:
    for profile in ("water", "heat"):
        req, rep = frame_bytes(profile)
        soft = await measure(profile, None, 500)
        limit = 2400 / ((req + rep) * 11)
        got = await measure(profile, 2400, 20)
        print(f"{profile:5s}: request {req} bytes (4 FE), reply {rep} bytes (2 FE); software {1000 / soft:.2f} ms a read; "
              f"2400 baud 8E1: limit {limit:.2f} reads/s, measured {got:.2f} = {got / limit:.3f} of the limit")
    print(f"importing drivers.cjt188 (after the contract and the serial line) adds {import_rss_mb():.1f} MB RSS")


if __name__ == "__main__":
    asyncio.run(main())
