"""BACnet/IP ReadPropertyMultiple: points per second and gateway CPU per 1,000 points, and the RSS
bacpypes3 adds to the daemon.

The simulated AHU runs in its own process (``edge-agent simulate bacnet-ahu`` on a free loopback
port), so the CPU measured here (process time of this process) is the gateway side only: the
driver building requests, bacpypes3 encoding and decoding, the samples. Each poll reads every
object's present-value and status-flags; ``per_request`` objects share one request, so the ratio
between rows is what batching buys. The RSS figures come from fresh interpreters reading
/proc/self/statm before and after an import.

    python tests/bench/bench_bacnet.py [--polls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.simkit.conformance import SimDevice, build_driver
from drivers.bacnet import SPEC
from drivers.bacnet.link import free_udp_port
from drivers.bacnet.sim import OBJECTS

RSS_PROBE = """
import os, sys
def rss(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
import agent.app, agent.contract  # the daemon before any driver
base = rss()
{code}
print(round(rss() - base, 1))
"""


def rss_delta(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE.format(code=code)], capture_output=True, text=True,
                         check=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1])


async def measure(address: str, per_request: int, polls: int, tmp: Path) -> tuple[float, float]:
    objects = {name: {"object": f"{t},{i}"} for name, (t, i, _, _) in OBJECTS.items()}
    dev = SimDevice(device={"type": "bacnet", "address": address, "device_instance": 1001, "cov": False,
                            "local_address": f"127.0.0.1:{free_udp_port()}", "objects": objects,
                            "per_request": per_request, "request_timeout": 10}, lines={})
    driver, pool = build_driver(SPEC, dev, tmp)
    await driver.open()
    try:
        for _ in range(5):
            await driver.read()  # warm up
        n = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(polls):
            n += len(await driver.read())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await driver.close()
        await pool.close()
    return n / wall, cpu / n * 1000 * 1000  # points/s, ms CPU per 1,000 points


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=200)
    args = ap.parse_args()
    port = free_udp_port()
    sim = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", "bacnet-ahu", "--address",
                            f"127.0.0.1:{port}", "--speed", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True)
    try:
        assert sim.stdout is not None
        print(sim.stdout.readline().strip())
        print(f"{len(OBJECTS)} objects, present-value + status-flags each, {args.polls} polls per row")
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for per in (1, 4, len(OBJECTS)):
                rate, cpu = asyncio.run(measure(f"127.0.0.1:{port}", per, args.polls, Path(tmp)))
                rows.append((per, rate, cpu))
                print(f"per_request {per:3d}: {rate:8.0f} points/s   {cpu:7.1f} ms CPU per 1,000 points")
        one, full = rows[0], rows[-1]
        print(f"batching {full[0]} objects a request: {full[1] / one[1]:.1f}x the points/s, "
              f"{one[2] / full[2]:.1f}x less CPU per point than one object a request")
    finally:
        sim.terminate()
        sim.wait(10)
    driver = rss_delta("import drivers.bacnet")
    lib = rss_delta("import drivers.bacnet\nbase = rss()\nimport bacpypes3.app, bacpypes3.pdu, bacpypes3.primitivedata")
    app = rss_delta("import drivers.bacnet\nbase = rss()\nfrom drivers.bacnet.link import make_app, free_udp_port\n"
                    "import asyncio\nasync def m():\n    make_app('x', 1, f'127.0.0.1:{free_udp_port()}').close()\n"
                    "asyncio.run(m())")
    print(f"RSS: the bacnet driver package {driver:.1f} MB without bacpypes3; importing bacpypes3 adds {lib:.1f} MB; "
          f"importing it and opening a BACnet/IP application {app:.1f} MB")


if __name__ == "__main__":
    main()
