"""Where an idle agent's CPU goes: the real agent process with no device (uplink, health, timers only),
with 1 and with N SDM630 meters (60 values each, all units on one Modbus TCP connection, as
bench_footprint.py) polled every second, a subscriber on the gateway's topics. Per thread: CPU % of a
core and wake-ups/s (voluntary context switches: the thread slept and was woken), and the cost of a meter's poll derived
in the same run. A plain script (the agent's dependencies and the ``mosquitto`` binary).

    python tests/bench/bench_idle.py [--meters 0,1,10] [--poll 1] [--window 30] [--settle 6] [--rounds 2]
        [--tree PATH --tree PATH]   (each a source tree run with PYTHONPATH=PATH, interleaved: an A/B)

CPU is /proc/PID/task/*/schedstat (nanoseconds, not 10 ms ticks), wake-ups /proc/PID/task/*/status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import footprint_kit as kit  # noqa: E402


def threads(pid: int) -> dict[int, tuple[str, float, int]]:
    """tid -> (name, CPU seconds, wake-ups: voluntary context switches)."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu = int((t / "schedstat").read_text().split()[0]) / 1e9
            status = (t / "status").read_text()
        except OSError:
            continue
        switches = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])  # slept, then woken
        out[int(t.name)] = ("main" if int(t.name) == pid else "other threads", cpu, switches)
    return out


def config(tmp: Path, name: str, broker: kit.Mosquitto, meters: int, port: int, poll: float) -> Path:
    import orjson

    from drivers.modbus_meter.codec import load_profile

    names = orjson.dumps([r.name for r in load_profile("sdm630").registers][:60]).decode()
    out = [f'[gateway]\nid = "{name}"\nstate_dir = "{tmp / name}"\nlog_level = "WARNING"\n',
           f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n']
    if meters:
        out.append(f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n')
    for uid in range(1, meters + 1):
        out.append(f'[[devices]]\nname = "meter{uid}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {uid}\n'
                   f'line = "meters"\npoll_interval = {poll}\nmetrics = {names}\n')
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(out))
    return path


def run(tree: str | None, tmp: Path, broker: kit.Mosquitto, port: int, meters: int, args: argparse.Namespace,
        name: str) -> dict[str, tuple[float, float]]:
    cfg = config(tmp, name, broker, meters, port, args.poll)
    sub = kit.Subscriber(broker.host, broker.port, [f"edge/{name}/telemetry/#"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"PYTHONPATH": tree} if tree else {})}
    with open(tmp / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)], cwd=tree,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp / name / "status.json").exists() or (meters and sub.count == 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / f"{name}.log").read_text()[-3000:])
            time.sleep(0.1)
        time.sleep(args.settle)
        a, w0 = threads(proc.pid), time.monotonic()
        time.sleep(args.window)
        b, w1 = threads(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(30)
        sub.stop()
    per: dict[str, list[float]] = {}
    for tid, (who, cpu, sw) in b.items():
        _, cpu0, sw0 = a.get(tid, (who, 0.0, 0))
        acc = per.setdefault(who, [0.0, 0.0])
        acc[0] += cpu - cpu0
        acc[1] += sw - sw0
    dt = w1 - w0
    out = {who: (c / dt * 100, s / dt) for who, (c, s) in per.items()}
    out["all"] = (sum(c for c, _ in out.values()), sum(s for _, s in out.values()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", default="0,1,10")
    ap.add_argument("--poll", type=float, default=1.0, help="poll interval (s)")
    ap.add_argument("--window", type=float, default=30.0, help="seconds measured")
    ap.add_argument("--settle", type=float, default=6.0, help="seconds after the first publish before measuring")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tree", action="append", help="source tree to run (PYTHONPATH); several: interleaved")
    args = ap.parse_args()
    trees = args.tree or [None]
    counts = [int(m) for m in args.meters.split(",")]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; poll every {args.poll:g} s, "
          f"{args.window:g} s windows", flush=True)
    results: dict[tuple[str | None, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("NUMBA_CACHE_DIR", str(tmp / "numba-cache"))
        for tree in trees:  # each tree's own kernels built ahead of time (the build is keyed on their sources)
            subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(tmp / "warm")],
                           check=True, capture_output=True, cwd=tree,
                           env={**os.environ, **({"PYTHONPATH": tree} if tree else {})})
        broker = kit.Mosquitto(tmp / "broker")
        try:
            for meters in counts:
                sim = kit.MeterSim(meters) if meters else None
                try:
                    for rnd in range(args.rounds):
                        for i, tree in enumerate(trees):
                            label = f"{Path(tree).name if tree else 'agent'} {meters} meters r{rnd}"
                            r = run(tree, tmp, broker, sim.port if sim else 0, meters, args, f"idle{i}m{meters}r{rnd}")
                            results.setdefault((tree, meters), []).append(r["all"][0])
                            parts = "  ".join(f"{who} {c:.3f} % {s:.1f} wake-ups/s" for who, (c, s) in r.items())
                            print(f"{label:<28} {parts}", flush=True)
                finally:
                    if sim is not None:
                        sim.stop()
        finally:
            broker.stop()
    if len(counts) > 1 and min(counts) == 0:
        top = max(counts)
        for tree in trees:
            idle0 = sum(results[(tree, 0)]) / len(results[(tree, 0)])
            busy = sum(results[(tree, top)]) / len(results[(tree, top)])
            per_poll_ms = (busy - idle0) / 100 / (top / args.poll) * 1000
            print(f"{Path(tree).name if tree else 'agent'}: no device {idle0:.3f} % of a core; each meter's poll "
                  f"{per_poll_ms:.2f} ms of CPU (incl. its share of commit and publish), {top} meters "
                  f"{busy:.3f} % = {busy / idle0:.1f}x the agent without devices")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
