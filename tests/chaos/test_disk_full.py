"""Disk full under the state directory: the real agent process on a small tmpfs, a real mosquitto.

While the filesystem is full the agent must hold a bounded amount of memory (evicting the oldest raw
telemetry first, counted as drops), keep publishing health, and log the fault once; after the space
comes back the held messages are committed with seqs in reading order, and rows the broker already
acknowledged (whose delete failed on the full disk) are neither re-sent nor reported as unsent.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import orjson
import psutil
import pytest
from fs_helpers import fill, small_tmpfs

from agent.model import Quality

from .agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(240)

ROWS = 150_000  # readings replayed; the fault lasts while ~60,000 of them are read
FS_BYTES = 24 * 1024 * 1024
MAX_BYTES = 32 * 1024 * 1024  # the outbox cap: the in-memory hold is derived from it (1 MiB)


@pytest.fixture
def small_fs(tmp_path: Path):
    with small_tmpfs(tmp_path / "state", FS_BYTES) as mnt:
        yield mnt


def drain_wal(db: Path) -> None:
    """Checkpoint and truncate the outbox WAL (as SQLite itself does now and then), so that the next
    write after the disk fills has to grow a file, as it will sooner or later on a real full disk."""
    conn = sqlite3.connect(str(db), timeout=10)
    try:
        for _ in range(100):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.02)
    finally:
        conn.close()


def rows_in_outbox(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


def latest_health(sub) -> dict | None:
    bodies = [m.json() for m in sub.snapshot() if m.topic.endswith("/health")]
    return bodies[-1] if bodies else None


def seq_inversions(messages, device: str) -> tuple[int, dict[int, int]]:
    """Reading-order inversions when the device's telemetry is taken in seq order; and how many
    times each seq arrived. Gap markers are not readings: a poll that timed out on the loaded machine
    makes the device stale, and its marker is stamped with the wall clock, not the replayed file's time."""
    arrivals: dict[int, int] = {}
    by_seq: dict[int, list[int]] = {}
    for m in messages:
        if not m.topic.endswith(f"/telemetry/{device}"):
            continue
        body = orjson.loads(m.payload)
        arrivals[body["seq"]] = arrivals.get(body["seq"], 0) + 1
        by_seq[body["seq"]] = [r["ts"] for r in body["readings"] if not r["q"] & Quality.STALE]
    inversions, last = 0, -1
    for seq in sorted(by_seq):
        for ts in by_seq[seq]:
            if ts < last:
                inversions += 1
            last = max(last, ts)
    return inversions, arrivals


def test_disk_full_holds_bounded_memory_keeps_health_and_order(tmp_path: Path, small_fs: Path, mosquitto,
                                                               mqtt_subscriber, monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))  # kernels are not the test's disk
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, ROWS, step_s=1)
    # Python kernels throughout: at this rate 'auto' would load numba (~130 MB) in the middle of the measurement
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=100, poll=0.01, max_bytes=MAX_BYTES,
                       extra='[processing]\njit = "off"\n')
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    proc = psutil.Process(agent.proc.pid)
    db = small_fs / "outbox.db"
    filler = None
    try:
        def reading(n: int):
            return lambda: (h := latest_health(sub)) is not None and h["pipeline"]["readings_in"] >= n
        assert wait_until(reading(10_000), 90), agent.log_tail()
        drain_wal(db)
        filler = fill(small_fs)
        fault_start = time.time() * 1000
        rss0 = proc.memory_info().rss
        log_mark = len(agent.log.read_bytes())
        peak = rss0
        start_in = latest_health(sub)["pipeline"]["readings_in"]

        def read_more() -> bool:
            nonlocal peak
            peak = max(peak, proc.memory_info().rss)
            return reading(start_in + 60_000)()
        assert wait_until(read_more, 60, interval=0.05), f"no health showing progress during the fault\n{agent.log_tail()}"
        health = [m.json() for m in sub.snapshot() if m.topic.endswith("/health") and m.json()["ts"] > fault_start]
        fault_log = agent.log.read_bytes()[log_mark:].decode(errors="replace")
        os.unlink(filler)
        filler = None

        growth = peak - rss0
        print(f"RSS at fault {rss0 / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB)")
        assert len(health) >= 3, f"{len(health)} health reports during the fault"
        drops = health[-1]["buffer"]["drops"]
        print(f"drops counted in health during the fault: {drops}")
        assert drops["raw"] > 0 and drops["event"] == drops["audit"] == 0, drops
        assert growth < 16 * 2**20, f"memory grew by {growth / 2**20:.1f} MiB while the disk was full"
        assert "Traceback" not in fault_log, fault_log[-3000:]
        # logged once per episode (SQLite may find room in its own files now and then), not every cycle
        assert fault_log.count("commit failed") <= fault_log.count("commit recovered") + 1, fault_log[-3000:]

        # recovery: everything read is committed and delivered, the outbox empties without a reconnect
        assert wait_until(reading(ROWS), 120), agent.log_tail()
        assert wait_until(lambda: rows_in_outbox(db) == 0, 60), f"{rows_in_outbox(db)} rows stuck\n{agent.log_tail()}"
        assert wait_until(lambda: latest_health(sub)["buffer"]["depth"] == 0, 60)
        assert "recovered" in agent.log.read_text(errors="replace")[log_mark:]
    finally:
        if filler is not None:
            with contextlib.suppress(OSError):
                os.unlink(filler)
        assert agent.terminate() == 0, agent.log_tail()
    final = latest_health(sub)
    assert final["uplink"]["connects"] == 1, final["uplink"]
    inversions, arrivals = seq_inversions(sub.snapshot(), "meter")
    resent = sorted(seq for seq, n in arrivals.items() if n > 1)
    assert inversions == 0, f"{inversions} readings arrived out of reading order by seq"
    assert resent == [], f"{len(resent)} acknowledged messages were sent again, e.g. seq {resent[:5]}"


def test_started_on_a_full_disk_runs_holds_reports_and_recovers(tmp_path: Path, small_fs: Path, mosquitto,
                                                                mqtt_subscriber, monkeypatch) -> None:
    """The disk is full before the agent starts: it must start all the same (not exit and be restarted
    by systemd every few seconds, collecting nothing), hold readings in memory within the bound derived
    from the outbox cap, say so in health, and commit and deliver them once space comes back."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    csv = tmp_path / "meter.csv"
    rows = 3000
    write_replay_csv(csv, rows, step_s=1)
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=10, poll=0.05, max_bytes=MAX_BYTES,
                       extra='[processing]\njit = "off"\n')
    filler = fill(small_fs)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        def holding() -> bool:
            h = latest_health(sub)
            return h is not None and h["pipeline"]["held"] >= 50
        assert wait_until(holding, 90), agent.log_tail()
        assert agent.proc.poll() is None, agent.log_tail()
        held = latest_health(sub)["pipeline"]
        assert 0 < held["held_bytes"] <= 1024 * 1024, held  # hold_bytes_for(32 MiB cap): 1 MiB
        assert held["commit_errors"] > 0
        text = agent.log.read_text(errors="replace")
        assert "disk is full" in text and "Traceback" not in text, text[-3000:]
        os.unlink(filler)
        filler = None

        def delivered() -> int:
            return sum(len(m.json()["readings"]) for m in sub.snapshot() if m.topic.endswith("/telemetry/meter"))
        assert wait_until(lambda: delivered() >= rows, 120), f"{delivered()} of {rows}\n{agent.log_tail()}"
        assert "recovered" in agent.log.read_text(errors="replace")
        assert wait_until(lambda: latest_health(sub)["pipeline"]["held"] == 0, 30)
    finally:
        if filler is not None:
            with contextlib.suppress(OSError):
                os.unlink(filler)
        assert agent.terminate() == 0, agent.log_tail()
    inversions, arrivals = seq_inversions(sub.snapshot(), "meter")
    assert inversions == 0 and max(arrivals.values()) == 1
    assert "Traceback" not in agent.log.read_text(errors="replace")
