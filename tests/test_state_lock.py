"""One writer per state directory: a second `edge-agent run` on the same state dir is refused at once,
naming the running instance's pid and the lock file; a kill -9 leaves no lock that blocks a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

from agent.store import Outbox
from agent.store.statelock import LOCK_NAME, StateDirLocked, StateLock, lock_owner

pytestmark = pytest.mark.timeout(180)


def run_second(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def running(agent: AgentProcess) -> bool:
    return "running:" in agent.log_tail(100_000)


def test_second_agent_on_one_state_dir_is_refused_and_kill9_leaves_no_stale_lock(
        tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 200_000)  # still streaming for the whole test
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=5, poll=0.1)
    lock = tmp_path / "state" / LOCK_NAME
    first = AgentProcess(cfg, tmp_path / "first.log").start()
    try:
        assert wait_until(lambda: running(first), 90), first.log_tail()
        second = run_second(cfg)
        assert second.returncode == 2, (second.returncode, second.stderr[-2000:])
        assert f"pid {first.proc.pid}" in second.stderr and str(lock) in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None, "the running agent must not be disturbed"
        assert lock_owner(lock.parent) == first.proc.pid

        first.kill9()  # the kernel drops the lock with the process; the file (and its pid) stay
        assert lock.exists()
        sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/telemetry/#")
        restarted = AgentProcess(cfg, tmp_path / "restarted.log").start()
        try:
            assert wait_until(lambda: running(restarted), 90), restarted.log_tail()
            assert lock_owner(lock.parent) == restarted.proc.pid
            assert wait_until(lambda: len(sub.snapshot()) > 0, 30), "the restarted agent publishes"
            assert restarted.proc.poll() is None, restarted.log_tail()
        finally:
            assert restarted.terminate() == 0, restarted.log_tail()
    finally:
        first.kill9()


def test_lock_is_exclusive_between_holders_and_freed_on_release(tmp_path: Path) -> None:
    held = StateLock(tmp_path).acquire()
    with pytest.raises(StateDirLocked, match=rf"pid \d+.*lock file {tmp_path / LOCK_NAME}"):
        StateLock(tmp_path).acquire()
    held.release()
    with StateLock(tmp_path):
        assert lock_owner(tmp_path) is not None
    StateLock(tmp_path).acquire().release()


def test_second_agent_with_its_own_state_dir_but_the_same_outbox_is_refused(tmp_path: Path, mosquitto) -> None:
    """The state-dir lock cannot see it: `[store] path` of the second points at the first one's outbox."""
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 200_000)
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    outbox = first_dir / "state" / "outbox.db"
    cfg = agent_config(first_dir, mosquitto, {"meter": csv}, rows_per_read=5, poll=0.1)
    other = agent_config(second_dir, mosquitto, {"meter": csv}, rows_per_read=5, poll=0.1)
    other.write_text(other.read_text().replace("[store]\n", f'[store]\npath = "{outbox}"\n'))
    first = AgentProcess(cfg, tmp_path / "first.log").start()
    try:
        assert wait_until(lambda: running(first), 90), first.log_tail()
        second = run_second(other)
        assert second.returncode == 2, (second.returncode, second.stderr[-2000:])
        assert f"outbox {outbox} is in use by another edge-agent (pid {first.proc.pid})" in second.stderr, second.stderr
        assert "[store] path" in second.stderr and "Traceback" not in second.stderr
        assert first.proc.poll() is None, "the running agent must not be disturbed"
    finally:
        assert first.terminate() == 0, first.log_tail()
    with Outbox(outbox, max_bytes=8 * 1024 * 1024, gateway="gw-chaos"):  # the lock went with the first agent
        pass


def test_outbox_file_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    with Outbox(db, max_bytes=8 * 1024 * 1024, gateway="gw1"):
        script = ("import sys; from agent.store import Outbox; from agent.store.outbox import OutboxLocked\n"
                  f"try: Outbox({str(db)!r}, max_bytes=8 << 20, gateway='gw2')\n"
                  "except OutboxLocked as e: print(e); sys.exit(3)\n")
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert f"outbox {db} is in use by another edge-agent (pid {os.getpid()})" in r.stdout
    with Outbox(db, max_bytes=8 * 1024 * 1024, gateway="gw1"):  # released on close
        pass
