"""Backlog drain after an outage: a full outbox published through a real mosquitto at the shipped
defaults (QoS 1, ``max_inflight`` 200, messages of the default ``readings_per_message``, full), at three backlog sizes.

Prints readings/s from the start (connecting included) to the last PUBACK, and from the first read
of the outbox (connected, sending) to the last PUBACK: the drain rate proper, without the TCP and
MQTT connect, a fixed cost that weighs on the smallest backlog only; then this process's
CPU-seconds per million readings (all threads, to the end of the stop, so the delete of the
acknowledged rows counts), the same two figures for the limit measured in the same run (a bare paho
client publishing the same messages with the same window, the same socket setting (an immediate
TCP ACK after each read, see agent.uplink.connection.quick_acks) and no outbox: mosquitto's QoS 1
rate on this machine) and the ratios to it (from the start), the outbox reads per message (``peek`` calls and rows returned:
1 row per message means no row is read twice), linearity: the CPU per reading at each backlog over
the CPU per reading at the smallest (1.0: linear in the backlog; above: each reading costs more the
more are behind), and the time from the start to the first read of the outbox (connecting). Sizes below 1 M readings run ``--runs`` times and
print the median. A second table has the real agent process (``edge-agent run``, no devices) drain
the same backlogs: its CPU per reading from the first message delivered to the last and how long its
threads waited for a CPU meanwhile (``--no-agent`` leaves it out). Needs only the agent's own dependencies and the ``mosquitto`` binary, so it runs
on a gateway as well:

    python tests/bench/bench_drain.py [--sizes 10000,100000,1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from footprint_kit import sqlite_fsync_commits

from agent.config.schema import MqttConfig, StoreConfig
from agent.store import Outbox, Pending, Priority
from agent.uplink.connection import quick_acks
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
    """CPU-seconds of this process, all threads (paho's network thread too), at nanosecond resolution."""
    return time.process_time()


class Counting:
    """Counts the outbox reads of a drain: calls to ``peek`` and rows they returned (one per message
    when the drain is linear: no row read twice); ``done`` is set when ``messages`` rows are acknowledged
    (the moment the uplink marks them, not the next poll)."""

    def __init__(self, ob: Outbox, messages: int):
        self.peeks = self.rows = self.acked = 0
        self.first_read: float | None = None  # perf_counter() of the first read: connected, sending
        self.messages = messages
        self.done = asyncio.Event()
        self._peek, self._mark_acked = ob.peek, ob.mark_acked
        ob.peek = self.peek  # type: ignore[method-assign]
        ob.mark_acked = self.mark_acked  # type: ignore[method-assign]

    def mark_acked(self, rowids: Any) -> None:
        rowids = list(rowids)
        self._mark_acked(rowids)
        self.acked += len(rowids)
        if self.acked >= self.messages:
            self.done.set()

    def peek(self, *a: Any, **kw: Any) -> list:
        if self.first_read is None:
            self.first_read = time.perf_counter()
        rows = self._peek(*a, **kw)
        self.peeks += 1
        self.rows += len(rows)
        return rows


async def drain(port: int, d: Path, messages: int) -> tuple[float, float, Counting, float, float]:
    """(readings/s, CPU-s per million readings, reads, seconds to connect, readings/s from the first
    read) for a backlog of ``messages`` at the defaults. The first rate runs from the start of the
    uplink (connecting included) to the last PUBACK, the last from the first read of the outbox; the
    CPU to the end of the stop, so the delete of the last rows counts too."""
    path = d / f"drain-{messages}.db"
    ob = Outbox(path, max_bytes=4 << 30, gateway="gw1")
    for i in range(0, messages, 1000):
        ob.append([Pending(Priority.RAW, TOPIC, body(i + k), READINGS) for k in range(min(1000, messages - i))])
    reads = Counting(ob, messages)
    up = Uplink(MqttConfig(host="127.0.0.1", port=port), "gw1", ob)
    c0, t0 = cpu(), time.perf_counter()
    task = asyncio.create_task(up.run())
    await reads.done.wait()
    wall = time.perf_counter() - t0
    await up.stop()
    await task
    used = cpu() - c0
    left = ob.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    ob.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if left:
        raise SystemExit(f"{left} rows of {messages} still in the outbox after the drain")
    readings = messages * READINGS
    connect = (reads.first_read or t0) - t0
    return readings / wall, used / readings * 1e6, reads, connect, readings / (wall - connect)


def bare_paho_run(port: int, messages: int) -> tuple[float, float]:
    """(readings/s, CPU-s per million readings) of a paho client alone: same payloads, same window,
    QoS 1, no outbox."""
    payloads = [orjson.dumps({**body(i), "gateway": "gw1", "seq": i + 1}) for i in range(min(messages, 2000))]
    done = threading.Semaphore(0)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(0)  # paho's fastest setting: no scan of its window per PUBACK; the
    c.max_queued_messages_set(0)  # window is kept here
    c.on_publish = lambda *a: done.release()
    c.connect("127.0.0.1", port)
    halt = threading.Event()
    ack_now = quick_acks(c.socket())  # the uplink's socket setting, so the limit is not 40 ms per burst slower

    def loop() -> None:
        while not halt.is_set():
            c.loop(0.5)
            ack_now()

    # as the uplink does: publish() only queues and wakes this loop, which does the socket I/O
    c.on_socket_register_write = c.on_socket_unregister_write = lambda *a: None
    net = threading.Thread(target=loop, daemon=True)
    net.start()
    c0, t0 = cpu(), time.perf_counter()
    for i in range(messages):
        c.publish(TOPIC, payloads[i % len(payloads)], qos=1)
        if i >= WINDOW:
            done.acquire()
    for _ in range(min(messages, WINDOW)):
        done.acquire()
    wall, used = time.perf_counter() - t0, cpu() - c0
    c.disconnect()
    halt.set()
    net.join(5)
    return messages * READINGS / wall, used / (messages * READINGS) * 1e6


def bare_paho(port: int, messages: int) -> float:
    """Readings/s of a paho client alone (see :func:`bare_paho_run`)."""
    return bare_paho_run(port, messages)[0]


def process_cpu(pid: int, field: int = 0) -> float:
    """CPU-seconds of a running process's threads at nanosecond resolution (the sum of their
    /proc schedstat run times; /proc/PID/stat counts in 10 ms ticks); ``field=1``: the seconds its
    threads were runnable but waited for a CPU (the run queue: other load on the machine)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[field])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total / 1e9


def agent_drain(port: int, d: Path, messages: int) -> tuple[float, float, float, float]:
    """The real agent process (``edge-agent run``, shipped defaults, no devices) draining an outbox
    filled before it starts: (readings/s, the agent's CPU-s per million readings, share of a core,
    seconds its threads waited for a CPU per second), from the first message a subscriber receives to
    the last, so the agent's start-up is left out.
    Raises SystemExit when a seq is missing."""
    state = d / f"agent-{messages}"
    state.mkdir()
    with Outbox(state / "outbox.db", max_bytes=StoreConfig.model_fields["max_bytes"].default, gateway="gw1") as ob:
        for i in range(0, messages, 1000):
            ob.append([Pending(Priority.RAW, TOPIC, body(i + k), READINGS) for k in range(min(1000, messages - i))])
    cfg = state / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw1"\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    seqs: set[int] = set()
    marks: list[tuple[float, float, float]] = []
    done = threading.Event()
    agent: subprocess.Popen | None = None

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        seqs.add(orjson.loads(msg.payload)["seq"])
        if len(seqs) in (1, messages) and agent is not None:
            marks.append((time.perf_counter(), process_cpu(agent.pid), process_cpu(agent.pid, 1)))
            if len(seqs) == messages:
                done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{messages}")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("edge/gw1/telemetry/#", qos=1)
    sub.loop_start()
    try:
        subscribed.wait(10)
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finished = done.wait(120 + messages / 100)
        agent.terminate()
        agent.wait(30)
    finally:
        sub.loop_stop()
        sub.disconnect()
        shutil.rmtree(state, ignore_errors=True)
    if not finished or len(marks) < 2:
        raise SystemExit(f"the agent delivered {len(seqs)} of {messages} messages")
    if seqs != set(range(1, messages + 1)):
        raise SystemExit(f"seqs missing: {sorted(set(range(1, messages + 1)) - seqs)[:10]}")
    (t0, c0, w0), (t1, c1, w1) = marks[0], marks[-1]
    readings = (messages - 1) * READINGS
    return readings / (t1 - t0), (c1 - c0) / readings * 1e6, (c1 - c0) / (t1 - t0), (w1 - w0) / (t1 - t0)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000", help="backlog sizes in readings")
    ap.add_argument("--runs", type=int, default=3,
                    help="drains per size below 1M readings (the median is printed; 1M and above run once)")
    ap.add_argument("--no-agent", action="store_true", help="leave out the drain by the real agent process")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proc, port = start_broker(d)
        try:
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
            print(f"backlog drain, shipped defaults: QoS 1, max_inflight {WINDOW}, {READINGS} readings/message; "
                  f"SQLite fsync'd commits/s here: {sqlite_fsync_commits(d, 1.0):,.0f} (a drain commits "
                  "its deletes about once a second)")
            print(f"{'backlog':>10} {'readings/s':>11} {'from 1st read':>13} {'CPU-s/M':>8} | {'bare paho r/s':>13} {'CPU-s/M':>8} |"
                  f" {'rate/bare':>9} {'CPU/bare':>8} | {'peeks/msg':>9} {'rows/msg':>8} | {'linearity':>9}"
                  f" {'connect ms':>10}")
            first: float | None = None
            for n in sizes:
                messages = max(1, n // READINGS)
                runs = [await drain(port, d, messages) for _ in range(args.runs if n < 1_000_000 else 1)]
                limits = [bare_paho_run(port, messages) for _ in range(len(runs))]
                rate, cpu_per_m = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                bare_rate, bare_cpu = statistics.median(r[0] for r in limits), statistics.median(r[1] for r in limits)
                reads = runs[-1][2]
                first = first or cpu_per_m
                sending = statistics.median(r[4] for r in runs)
                print(f"{n:>10,} {rate:>11,.0f} {sending:>13,.0f} {cpu_per_m:>8.2f} | {bare_rate:>13,.0f} {bare_cpu:>8.2f} |"
                      f" {rate / bare_rate:>9.2f} {cpu_per_m / bare_cpu:>8.2f} | {reads.peeks / messages:>9.3f}"
                      f" {reads.rows / messages:>8.3f} | {cpu_per_m / first:>9.2f}"
                      f" {statistics.median(r[3] for r in runs) * 1000:>10.0f}", flush=True)
            if args.no_agent:
                return
            print("\nthe agent process (edge-agent run, no devices) draining the same backlog, from the first "
                  "message a subscriber gets to the last (start-up left out), every seq delivered:")
            print("(run-queue wait: the time its threads were ready to run but waited for a CPU, in % of the "
                  "drain, summed over threads: the other load on the machine; with that high, a low share of "
                  "a core is the machine's, not a drain waiting on itself)")
            print(f"{'backlog':>10} {'readings/s':>11} {'CPU-s/M':>8} {'% of a core':>11} {'run-queue wait %':>16}")
            for n in sizes:
                rate, cpu_per_m, share, waited = agent_drain(port, d, max(2, n // READINGS))
                print(f"{n:>10,} {rate:>11,.0f} {cpu_per_m:>8.2f} {share * 100:>11.0f} {waited * 100:>16.0f}",
                      flush=True)
        finally:
            proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
