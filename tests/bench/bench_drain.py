"""Backlog drain after an outage: a full outbox published through a real mosquitto at the shipped
defaults (QoS 1, ``max_inflight`` 200, 100 readings per message), at three backlog sizes.

Prints readings/s, this process's CPU-seconds per million readings, the ratio to the limit measured
in the same run (a bare paho client publishing the same messages with the same window and no outbox:
mosquitto's QoS 1 rate on this machine), and linearity: the CPU per reading at each backlog over the
CPU per reading at the smallest (1.0: linear in the backlog; above: each reading costs more the more
are behind). Needs only the agent's own dependencies and the
``mosquitto`` binary, so it runs on a gateway as well:

    python tests/bench/bench_drain.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

from agent.config.schema import MqttConfig
from agent.store import Outbox, Pending, Priority
from agent.uplink.mqtt import Uplink

READINGS = MqttConfig.model_fields["readings_per_message"].default
WINDOW = MqttConfig.model_fields["max_inflight"].default
TOPIC = "edge/gw1/telemetry/meter1"


def body(i: int) -> dict:
    return {"v": 1, "device": "meter1",
            "readings": [{"ts": 1_700_000_000_000 + i * 1000, "metric": f"m{k}", "value": 230.0 + k * 0.1,
                          "unit": "V", "q": 0} for k in range(READINGS)]}


def start_broker(d: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = d / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n"
                    f"max_inflight_messages 0\nmax_queued_messages 0\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def drain(port: int, d: Path, messages: int) -> tuple[float, float]:
    """(readings/s, CPU-s per million readings) for a backlog of ``messages`` at the defaults."""
    ob = Outbox(d / f"drain-{messages}.db", max_bytes=4 << 30, gateway="gw1")
    for i in range(0, messages, 1000):
        ob.append([Pending(Priority.RAW, TOPIC, body(i + k)) for k in range(min(1000, messages - i))])
    up = Uplink(MqttConfig(host="127.0.0.1", port=port), "gw1", ob)
    c0, t0 = cpu(), time.perf_counter()
    task = asyncio.create_task(up.run())
    while up.stats().acked < messages:
        await asyncio.sleep(0.02)
    wall, used = time.perf_counter() - t0, cpu() - c0
    await up.stop()
    await task
    assert ob.stats().depth == 0
    ob.close()
    readings = messages * READINGS
    return readings / wall, used / readings * 1e6


def bare_paho(port: int, messages: int) -> float:
    """Readings/s of a paho client alone: same payloads, same window, QoS 1, no outbox."""
    payloads = [orjson.dumps({**body(i), "gateway": "gw1", "seq": i + 1}) for i in range(min(messages, 2000))]
    done = threading.Semaphore(0)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(WINDOW)
    c.max_queued_messages_set(0)
    c.on_publish = lambda *a: done.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    for i in range(messages):
        c.publish(TOPIC, payloads[i % len(payloads)], qos=1)
        if i >= WINDOW:
            done.acquire()
    for _ in range(min(messages, WINDOW)):
        done.acquire()
    wall = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return messages * READINGS / wall


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000", help="backlog sizes in readings")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proc, port = start_broker(d)
        try:
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
            print(f"backlog drain, shipped defaults: QoS 1, max_inflight {WINDOW}, {READINGS} readings/message")
            print(f"{'backlog':>10} {'readings/s':>12} {'CPU-s/M':>8} {'bare paho r/s':>14} {'agent/bare':>10}"
                  f" {'linearity':>9}")
            first: float | None = None
            for n in sizes:
                messages = max(1, n // READINGS)
                rate, cpu_per_m = await drain(port, d, messages)
                limit = bare_paho(port, messages)
                first = first or cpu_per_m
                print(f"{n:>10,} {rate:>12,.0f} {cpu_per_m:>8.1f} {limit:>14,.0f} {rate / limit:>10.2f}"
                      f" {cpu_per_m / first:>9.2f}", flush=True)
        finally:
            proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
