"""One writer per state directory: a second `edge-agent run` on the same state dir is refused at once,
naming the running instance's pid and the lock file; a kill -9 leaves no lock that blocks a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

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
