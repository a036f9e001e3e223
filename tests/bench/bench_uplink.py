"""Uplink throughput through a real mosquitto: outbox -> QoS 1 -> PUBACK -> delete, for several
in-flight windows. Prints messages/s, readings/s and the ratio to a window of 1, from one run.

    python tests/bench/bench_uplink.py [--messages 3000] [--readings 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for mqtt_helpers

from mqtt_helpers import Broker  # noqa: E402

from agent.config.schema import MqttConfig  # noqa: E402
from agent.store import Outbox, Pending, Priority  # noqa: E402
from agent.uplink.mqtt import Uplink  # noqa: E402


def message(i: int, readings: int) -> Pending:
    rows = [{"ts": 1_700_000_000_000 + i, "metric": f"m{k}", "value": 230.0 + k, "unit": "V", "q": 0}
            for k in range(readings)]
    return Pending(Priority.RAW, "edge/gw1/telemetry/meter1", {"v": 1, "device": "meter1", "readings": rows})


async def drain(broker: Broker, d: Path, window: int, n: int, readings: int) -> float:
    ob = Outbox(d / f"o-{window}.db", max_bytes=1 << 30, gateway="gw1")
    for i in range(0, n, 500):
        ob.append([message(i + k, readings) for k in range(min(500, n - i))])
    up = Uplink(MqttConfig(host=broker.host, port=broker.port, max_inflight=window), "gw1", ob)
    task = asyncio.create_task(up.run())
    t0 = time.perf_counter()
    while ob.stats().depth:
        await asyncio.sleep(0.005)
    rate = n / (time.perf_counter() - t0)
    await up.stop()
    await task
    ob.close()
    return rate


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--readings", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        broker = Broker(d / "broker").start()
        broker.conf_path.write_text(broker.conf_path.read_text().replace("log_type all", "log_type error"))
        broker.restart()
        try:
            print(f"uplink drain of {a.messages} queued messages x {a.readings} readings (real mosquitto)")
            base = None
            for window in (1, 10, 50, 200, 1000):
                n = a.messages if window > 1 else max(200, a.messages // 10)
                r = await drain(broker, d, window, n, a.readings)
                base = base or r
                print(f"  max_inflight={window:<5} {r:>9,.0f} msgs/s {r * a.readings:>12,.0f} readings/s"
                      f"  {r / base:5.1f}x window 1")
        finally:
            broker.kill()


if __name__ == "__main__":
    asyncio.run(main())
