"""Parts of bench_footprint.py that need only the agent's own dependencies and the ``mosquitto``
binary (no pytest, no psutil), so the benchmark runs on a gateway: a broker, a Modbus meter simulator
in a process of its own, per-process CPU and memory from /proc, a subscriber that checks for loss, and
the physical limits (simulator round trip, mosquitto's QoS 1 rate, SQLite's fsync'd commit rate)."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{what} did not listen on {port} within {timeout:.0f} s")


class Mosquitto:
    """A mosquitto on 127.0.0.1 with an optional ACL file text."""

    def __init__(self, d: Path, acl: str | None = None):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise SystemExit("the mosquitto binary is needed (apt install mosquitto)")
        self.host, self.port = "127.0.0.1", free_port()
        d.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} {self.host}", "allow_anonymous true", "persistence false", "log_type error",
                 "max_inflight_messages 0", "max_queued_messages 0"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', which cannot read a private temp dir
        if acl is not None:
            (d / "acl").write_text(acl)
            lines.append(f"acl_file {d / 'acl'}")
        (d / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", str(d / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port, self.proc, "mosquitto")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


_SIM = """
import asyncio, sys
from drivers.modbus_meter.sim import start
async def main():
    await start(units={u: "sdm630" for u in range(1, int(sys.argv[1]) + 1)}, tcp="127.0.0.1:" + sys.argv[2],
                update_interval=1.0)
    await asyncio.Event().wait()
asyncio.run(main())
"""


class MeterSim:
    """``units`` SDM630 simulators (unit ids 1..N) on one Modbus TCP port, in a process of its own
    (requests sent together are queued and each answered, as a device with a request queue does)."""

    def __init__(self, units: int):
        self.port = free_port()
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen([sys.executable, "-c", _SIM, str(units), str(self.port)], cwd=root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port, self.proc, "the meter simulator")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_demo_sims() -> tuple[str, Callable[[], None]]:
    """The demo's simulated devices on a loop of their own: (their config text, a stop function)."""
    import asyncio

    from agent.demo.sims import STARTERS, DemoSims

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="sims", daemon=True).start()
    sims = DemoSims()

    def stop() -> None:
        for h in reversed(sims.handles):
            try:
                asyncio.run_coroutine_threadsafe(h.stop(), loop).result(30)
            except Exception:  # noqa: BLE001 - best effort at the end of a benchmark
                pass
        loop.call_soon_threadsafe(loop.stop)

    try:
        for starter in STARTERS:
            asyncio.run_coroutine_threadsafe(starter(sims), loop).result(120)
    except BaseException:
        stop()
        raise
    return "".join(sims.toml) + sims.site_toml, stop


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children: none in steady state)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / _TICK


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and anonymous memory (MiB) from /proc/PID/smaps_rollup, and LLVM's resident share."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Anonymous"):
            out[key.lower()] = int(rest.split()[0]) / 1024
    llvm, name = 0, ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if "-" in f[0] and len(f) >= 5:
            name = f[5] if len(f) > 5 else ""
        elif f[0] == "Rss:" and "libllvmlite" in name:
            llvm += int(f[1])
    out["llvm"] = llvm / 1024
    return out


class Subscriber:
    """Counts datapoints as they arrive and keeps what the loss check needs: every (stream, seq) and
    how many readings each (device, ts) brought. ``count`` parses a payload into a datapoint count;
    ``answer`` may handle a message itself (return True). ``complete_at``: a read that has brought this
    many readings is counted and forgotten (memory stays flat over a long run); a reading of it that
    comes again after that starts a new, incomplete entry, so the loss check still sees it."""

    def __init__(self, host: str, port: int, topics: list[str], *, agent: bool = True, answer=None, count=None,
                 complete_at: int | None = None):
        self.count = 0
        self.messages = 0
        self.first_at: float | None = None
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.reads: Counter = Counter()  # (device, ts) -> readings with a value
        self.complete = 0  # reads forgotten once complete (``complete_at``)
        self.health: dict | None = None
        self._agent, self._answer, self._count, self._complete_at = agent, answer, count, complete_at
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        if self._answer is not None and self._answer(client, msg):
            return
        if self._agent and msg.topic.endswith("/health"):
            self.health = orjson.loads(msg.payload)
            return
        if not self._agent:
            n = self._count(msg.payload)
        else:
            body = orjson.loads(msg.payload)  # seqs of every message; datapoints of telemetry
            readings = (body.get("readings") or ()) if "/telemetry/" in msg.topic else ()
            n = len(readings)
            with self.lock:
                self.seqs[str(body.get("stream"))].append(int(body["seq"]))
                device = body.get("device")
                for r in readings:
                    if r.get("value") is not None:
                        key = (device, r.get("ts"))
                        self.reads[key] += 1
                        if self.reads[key] == self._complete_at:
                            del self.reads[key]
                            self.complete += 1
        with self.lock:
            self.count += n
            self.messages += 1
            if self.first_at is None:
                self.first_at = time.monotonic()

    def loss(self, values_per_read: int) -> str:
        """'none' or what was lost: seq gaps or duplicates per stream, reads that arrived incomplete."""
        with self.lock:
            problems = []
            for seqs in self.seqs.values():
                s = sorted(seqs)
                gaps = (s[-1] - s[0] + 1) - len(set(s)) if s else 0
                if s and s[0] != 1:
                    problems.append(f"first seq {s[0]}")
                if gaps:
                    problems.append(f"{gaps} seq missing")
                if len(s) != len(set(s)):
                    problems.append(f"{len(s) - len(set(s))} duplicates")
            incomplete = sum(1 for n in self.reads.values() if n != values_per_read)
            if incomplete:
                problems.append(f"{incomplete} of {len(self.reads) + self.complete} reads incomplete")
            return "; ".join(problems) or "none"

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ----------------------------------------------------------------------------------------- limits
def block_plan(addresses: list[int], *, max_registers: int, max_gap: int, width: int = 2) -> list[tuple[int, int]]:
    """(start, count) requests covering float32 registers at ``addresses``, greedy, as a driver coalesces."""
    blocks: list[tuple[int, int]] = []
    for a in sorted(addresses):
        if blocks:
            start, count = blocks[-1]
            if a - (start + count) <= max_gap and a + width - start <= max_registers:
                blocks[-1] = (start, a + width - start)
                continue
        blocks.append((a, width))
    return blocks


def modbus_round_trip(port: int, blocks: list[tuple[int, int]], seconds: float = 3.0) -> float:
    """Mean seconds per request of a bare pymodbus client reading ``blocks`` of unit 1 one after another."""
    import asyncio

    from pymodbus.client import AsyncModbusTcpClient

    async def run() -> float:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for start, count in blocks:
                await client.read_input_registers(start, count=count, device_id=1)
                n += 1
        wall = time.perf_counter() - t0
        client.close()
        return wall / n

    return asyncio.run(run())


def sqlite_fsync_commits(d: Path, seconds: float = 2.0, payload: int = 10_000) -> float:
    """Commits per second of one row each, WAL, synchronous=FULL (the outbox's settings), in ``d``."""
    path = d / "fsync-probe.db"
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, p BLOB)")
    blob, n, t0 = os.urandom(payload), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.execute("BEGIN")
        c.execute("INSERT INTO t (p) VALUES (?)", [blob])
        c.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - t0)
    c.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rate
