"""Memory and CPU of the real agent process over a long run at one load, then the loss check. A plain
script (the agent's own dependencies and the ``mosquitto`` binary), so it runs on the gateway too.

    python tests/bench/bench_soak.py [--load 100x60@100] [--minutes 60] [--jit auto|on|off]

N SDM630 meters (one simulator process, one Modbus TCP port), 60 float32 values each, polled every P
ms, QoS 1 to mosquitto, as tests/bench/bench_footprint.py's loads. Every minute: RSS, anonymous memory
and PSS of the agent (MiB, /proc/PID/smaps_rollup), CPU-s per million datapoints delivered in that
minute, datapoints/s. At the end: the series at its first minute, every 10th and its last, the RSS
slope over the last half (least squares), and the loss check (the simulator stopped, delivery
settled: seqs 1..n with no gap or duplicate, every read's 60 values delivered).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import bench_footprint as fp  # noqa: E402
import footprint_kit as kit  # noqa: E402


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def soak(tmp: Path, broker: kit.Mosquitto, meters: int, poll_s: float, minutes: int) -> None:
    name = f"soak-{meters}-{int(poll_s * 1000)}"
    sim = kit.MeterSim(meters)
    # every topic the outbox stores (docs/payloads.md): their messages share the stream's seq, so a
    # topic left out would show as a gap; health is read apart and carries no seq
    stored = ("telemetry/#", "agg/#", "event", "audit", "cmd/+/result", "health")
    sub = kit.Subscriber(broker.host, broker.port, [f"edge/{name}/{t}" for t in stored], complete_at=fp.VALUES)
    # the service's state directory warmed as an install does (`edge-agent setup` runs warmup): the
    # run-time process's bytecode is in it, so the run does not start by compiling every module
    subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(tmp / name)], check=True,
                   capture_output=True)
    agent = fp.start_agent(tmp, name, fp.agent_config(tmp, name, broker, meters, sim.port, poll_s))
    rows: list[tuple[int, dict]] = []
    try:
        fp.wait(lambda: sub.count > 0, 300, "the agent's first publish", agent.proc, agent.log_tail)
        pid = agent.proc.pid
        print(f"{'min':>4} {'RSS':>6} {'anon':>6} {'PSS':>6} {'CPU-s/M':>8} {'dp/s':>7} {'CPU %':>6} {'load':>5}",
              flush=True)
        c0, r0, w0 = kit.cpu_s(pid), sub.count, time.monotonic()
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, w0 + 60 - time.monotonic()))
            if agent.proc.poll() is not None:
                raise RuntimeError(f"the agent exited ({agent.proc.returncode}):\n{agent.log_tail()}")
            c1, r1, w1 = kit.cpu_s(pid), sub.count, time.monotonic()
            mem = kit.memory(pid)
            r = {"rss": mem["rss"], "anon": mem["anonymous"], "pss": mem["pss"],
                 "cpu_s_per_M": (c1 - c0) / max(1, r1 - r0) * 1e6, "rate": (r1 - r0) / (w1 - w0),
                 "cpu_pct": (c1 - c0) / (w1 - w0) * 100}
            rows.append((minute, r))
            print(f"{minute:4d} {r['rss']:6.1f} {r['anon']:6.1f} {r['pss']:6.1f} {r['cpu_s_per_M']:8.1f} "
                  f"{r['rate']:7.0f} {r['cpu_pct']:6.1f} {os.getloadavg()[0]:5.2f}", flush=True)
            c0, r0, w0 = c1, r1, w1
        sim.stop()  # no more reads: what was read must all arrive
        fp.settle_count(sub)
        loss = sub.loss(fp.VALUES)
    finally:
        sim.stop()
        agent.terminate()
        sub.stop()
    picks = [m for m, _ in rows if m == 1 or m % 10 == 0 or m == len(rows)]
    print("\nsummary (minute: RSS / anonymous / PSS MiB, CPU-s/M): " + "; ".join(
        f"{m}: {r['rss']:.1f} / {r['anon']:.1f} / {r['pss']:.1f}, {r['cpu_s_per_M']:.1f}" for m, r in rows if m in picks))
    half = rows[len(rows) // 2:]
    for key in ("rss", "anon"):
        print(f"{key} slope over minutes {half[0][0]}-{half[-1][0]}: "
              f"{slope([(m, r[key]) for m, r in half]):+.3f} MiB/min; over the whole run "
              f"{slope([(m, r[key]) for m, r in rows]):+.3f} MiB/min; min {min(r[key] for _, r in rows):.1f}, "
              f"max {max(r[key] for _, r in rows):.1f}")
    print(f"delivered {sub.count} datapoints in {sub.messages} messages, {sub.complete + len(sub.reads)} reads; "
          f"loss: {loss}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", default="100x60@100", help="METERSxVALUES@POLL_MS")
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--jit", choices=["auto", "on", "off"], help="[processing] jit (default: the shipped default)")
    ap.add_argument("--cache", type=Path, help="kernel cache directory to warm and use (default: a new one)")
    args = ap.parse_args()
    fp.ARGS = argparse.Namespace(jit=args.jit)  # what bench_footprint's agent_config reads
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the sim, broker and agent it started
    meters, _, ms = fp.parse_load(args.load)
    import agent

    print(f"soak: {args.load} for {args.minutes} min, agent code {Path(agent.__file__).parent}, "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fp.warm_cache(tmp, args.cache)
        broker = kit.Mosquitto(tmp / "broker")
        try:
            soak(tmp, broker, meters, ms / 1000, args.minutes)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
