"""End-to-end throughput: replay at full speed -> pipeline (processing) -> SQLite outbox -> mosquitto
-> a subscriber, with the real agent process. Prints readings/s and the agent's CPU seconds per
million readings, plus the same figures with raw-only publishing.

    python tests/bench/bench_e2e.py [--readings 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from chaos.agent_proc import AgentProcess, write_replay_csv  # noqa: E402
from mqtt_helpers import Broker, Subscriber  # noqa: E402


def config(tmp: Path, broker: Broker, csvs: dict[str, Path], publish: str) -> Path:
    body = [f'[gateway]\nid = "gw-bench"\nstate_dir = "{tmp / "state"}"\n',
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nreadings_per_message = 100\nmax_inflight = 1000\n',
            '[store]\ncommit_interval = 0.1\n', '[processing]\nwindows = ["1m"]\n']
    for name, csv in csvs.items():
        body.append(f'[[devices]]\nname = "{name}"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\nloop = false\n'
                    f'max_rows_per_read = 5000\npoll_interval = 0.05\npublish = "{publish}"\nanomaly = true\n')
    path = tmp / f"bench-{publish}.toml"
    path.write_text("\n".join(body))
    return path


def run(n: int, devices: int, publish: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        per = n // devices
        csvs = {f"dev{i}": tmp / f"dev{i}.csv" for i in range(devices)}
        for p in csvs.values():
            # 1 s spacing: aggregates close every 60 readings, like a 1 Hz sensor
            write_replay_csv(p, per, step_s=1)
        broker = Broker(tmp / "broker")
        broker.start()
        sub = Subscriber(broker, ["edge/gw-bench/telemetry/#"]).start()
        agent = AgentProcess(config(tmp, broker, csvs, publish), tmp / "agent.log").start()
        ps = psutil.Process(agent.proc.pid)
        counted = 0
        t0 = None
        try:
            # wait until the kernels are warm and readings flow, then time the bulk
            deadline = time.monotonic() + 300
            seen = 0
            while time.monotonic() < deadline:
                msgs = sub.snapshot()
                counted += sum(len(orjson.loads(m.payload)["readings"]) for m in msgs[seen:])
                seen = len(msgs)
                if t0 is None and counted:
                    t0, c0, r0 = time.monotonic(), sum(ps.cpu_times()[:2]), counted
                if counted >= per * devices:
                    break
                time.sleep(0.05)
            t1, c1 = time.monotonic(), sum(ps.cpu_times()[:2])
            rss = ps.memory_info().rss
        finally:
            agent.terminate()
            sub.stop()
            broker.kill()
        done = counted - r0
        return {"publish": publish, "readings": counted, "rate": done / (t1 - t0),
                "cpu_s_per_M": (c1 - c0) / done * 1e6, "rss_mb": rss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=4)
    args = ap.parse_args()
    print(f"end to end, {args.readings} readings from {args.devices} replay devices, 100 readings/message, QoS 1")
    print(f"{'publish':<8} {'readings/s':>12} {'agent CPU s per 1M':>20} {'RSS MB':>8}")
    rows = [run(args.readings, args.devices, mode) for mode in ("raw", "both")]
    for r in rows:
        print(f"{r['publish']:<8} {r['rate']:>12,.0f} {r['cpu_s_per_M']:>20.1f} {r['rss_mb']:>8.0f}")
    print(f"goal 100,000 readings/s on one core: raw-only reaches {rows[0]['rate'] / 1e5:.2f}x of it "
          f"({1e6 / rows[0]['cpu_s_per_M']:,.0f} readings per agent CPU second)")


if __name__ == "__main__":
    main()
