"""DL/T 645 transactions per second against the wire-time limit at 2400 and 9600 baud (8E1).

The real driver reads one identifier per transaction from the simulator on a pty. Unpaced, the pty
moves bytes at memory speed: that measures the software cost per transaction. Paced, the simulator
answers only once the request and the reply would have crossed a line at that baud (11 bits a byte,
no meter turnaround): that measures how close the driver gets to the wire limit. The computed limit
is 1 / ((request + reply bytes) x 11 / baud).

    python tests/bench/bench_dlt645.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from agent.simkit.conformance import SimDevice, build_driver
from drivers.dlt645 import SPEC, codec
from drivers.dlt645.profiles import BY_METRIC
from drivers.dlt645.sim import Dlt645Sim, Meter

ADDR = "123456781012"
ITEM = BY_METRIC["voltage_l1"]


def frame_bytes(wake_request: int = 4, wake_reply: int = 2) -> tuple[int, int]:
    a = codec.parse_address(ADDR)
    request = len(codec.read_request(a, ITEM.di2007, wake=wake_request))
    reply = len(codec.fr.encode(codec.LAYOUT, a, 0x91, b"\0" * (4 + ITEM.fmt2007.size), wake=wake_reply))
    return request, reply


async def measure(pace: int | None, n: int) -> float:
    sim = await Dlt645Sim(meters=[Meter(ADDR)], pace_baud=pace).start()
    with tempfile.TemporaryDirectory() as tmp:
        dev = SimDevice(device={"type": "dlt645", "line": "l", "address": ADDR, "metrics": ["voltage_l1"]},
                        lines={"l": {"type": "serial", "port": sim.path, "baudrate": pace or 9600}})
        driver, pool = build_driver(SPEC, dev, Path(tmp))
        try:
            await driver.read_value(ITEM)  # open the port
            t0 = time.perf_counter()
            for _ in range(n):
                await driver.read_value(ITEM)
            return n / (time.perf_counter() - t0)
        finally:
            await pool.close()
            await sim.stop()


async def main() -> None:
    req, rep = frame_bytes()
    print(f"one read of {ITEM.metric} (DI {ITEM.di2007:08X}): request {req} bytes (4 FE), reply {rep} bytes (2 FE)")
    soft = await measure(None, 1000)
    print(f"software, unpaced pty: {soft:8.1f} transactions/s ({1000 / soft:.2f} ms each)")
    for baud in (2400, 9600):
        limit = baud / ((req + rep) * 11)
        got = await measure(baud, 40 if baud == 2400 else 120)
        print(f"{baud:5d} baud 8E1: limit {limit:6.2f} tx/s, measured {got:6.2f} tx/s = {got / limit:.3f} of the limit; "
              f"software share of the wire time {limit / soft:.4f}")


if __name__ == "__main__":
    asyncio.run(main())
