"""The Python cost of one poll's own steps, in process (no socket, no pipeline): an SDM630 poll of 60
values decoded by the modbus_meter driver from its register blocks, and the poller's round around a
driver read (deadline, result check, health, sink). Each beside the bare work it wraps, measured in the
same run: the driver's read against ``b"".join`` of the blocks plus one numpy view; the poller's
``poll_once`` against awaiting the driver alone. A plain script (the agent's dependencies).

    python tests/bench/bench_poll_path.py [--n 20000] [--repeat 7] [--tree PATH --tree PATH]
        (each tree run with PYTHONPATH=PATH in a subprocess, interleaved twice: an A/B)

CPU time per call (process_time), best of ``--repeat`` runs of ``--n`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def finish(coro):
    """The result of a coroutine that completes without waiting."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise RuntimeError("the coroutine waited")


def best(fn, n: int, repeat: int) -> float:
    """Seconds of CPU per call of the coroutine function ``fn`` (run to completion without a loop turn)."""
    out = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            try:
                fn().send(None)
            except StopIteration:
                pass
        out = min(out, (time.process_time() - t0) / n)
    return out


def measure(n: int, repeat: int) -> dict[str, float]:
    import numpy as np

    import agent.config  # noqa: F401 - import order: config before bus
    from agent.config.schema import DeviceConfig
    from agent.driver import Clock
    from agent.model import Batch
    from agent.scheduler import Poller
    from drivers.modbus_meter.codec import load_profile
    from drivers.modbus_meter.driver import ModbusMeterConfig, ModbusMeterDriver

    names = tuple(r.name for r in load_profile("sdm630").registers[:60])
    rng = np.random.default_rng(1)

    class Line:  # the blocks as a Modbus TCP line hands them over
        data: list[bytes] = []

        async def read_register_blocks(self, unit, blocks, timeout=None):
            return self.data

    class Ctx:
        clock = Clock()
        line = Line()
        buses = type("Buses", (), {"get": staticmethod(lambda name: Ctx.line)})

    driver = ModbusMeterDriver(ModbusMeterConfig(name="m", type="modbus_meter", profile="sdm630", line="x",
                                                 metrics=names), Ctx)  # type: ignore[arg-type]
    Line.data = [rng.normal(230, 5, c // 2).astype(">f4").tobytes() for _, _, c in driver._blocks]

    async def bare_decode():
        return np.frombuffer(b"".join(await Ctx.line.read_register_blocks(1, driver._blocks)), ">f4")

    fixed: Batch = finish(driver.read())  # one batch, returned by a driver that costs nothing

    class Fixed:
        def metrics(self):
            return driver.metrics()

        async def open(self):
            pass

        async def read(self):
            return fixed

        async def close(self):
            pass

    poller = Poller(DeviceConfig(name="m", type="x", poll_interval=0.1, timeout=5.0), Fixed(), lambda d, b: None)
    dev = Fixed()

    async def poll():  # poll_once arms its deadline on the running loop
        return await poller.poll_once()

    out: dict[str, float] = {}

    async def run() -> None:
        out["driver read"] = best(driver.read, n, repeat)
        out["join + view"] = best(bare_decode, n, repeat)
        out["poll_once"] = best(poll, n, repeat)
        out["await read"] = best(dev.read, n, repeat)

    asyncio.run(run())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tree", action="append", help="source tree to run (PYTHONPATH); several: interleaved")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child or not args.tree:
        r = measure(args.n, args.repeat)
        print(f"driver read {r['driver read'] * 1e6:.2f} us ({r['driver read'] / r['join + view']:.1f}x join + view "
              f"{r['join + view'] * 1e6:.2f} us); poll_once {r['poll_once'] * 1e6:.2f} us "
              f"({r['poll_once'] / r['await read']:.1f}x awaiting the read {r['await read'] * 1e6:.2f} us)", flush=True)
        return
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for rnd in range(2):
        for tree in args.tree:
            env = {**os.environ, "PYTHONPATH": tree}
            res = subprocess.run([sys.executable, str(HERE / "bench_poll_path.py"), "--child", "--n", str(args.n),
                                  "--repeat", str(args.repeat)], env=env, cwd=tree, capture_output=True, text=True)
            print(f"{Path(tree).name} r{rnd}: {res.stdout.strip() or res.stderr.strip()[-500:]}", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
