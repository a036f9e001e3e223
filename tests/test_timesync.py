"""Clock synchronisation as time daemons report it: kernel flag, systemd-timesyncd, chrony, ntpd."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent import timesync
from agent.timesync import run_command, time_sync_status

CHRONY_SYNCED = """Reference ID    : C0A80101 (192.168.1.1)
Stratum         : 3
System time     : 0.000012 seconds fast of NTP time
Leap status     : Normal
"""
CHRONY_UNSYNCED = CHRONY_SYNCED.replace("Normal", "Not synchronised")


def runner(outputs: dict[str, str]):
    return lambda argv: outputs.get(argv[0])


def kernel(value: bool | None):
    return lambda: value


def test_kernel_flag_decides_first(tmp_path: Path) -> None:
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(True), run=runner({}))
    assert (s.synchronized, s.source) == (True, "kernel")


def test_timesyncd_flag_file_counts_when_the_kernel_flag_is_not_set(tmp_path: Path) -> None:
    (tmp_path / "systemd" / "timesync").mkdir(parents=True)
    (tmp_path / "systemd" / "timesync" / "synchronized").touch()
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(False), run=runner({}))
    assert (s.synchronized, s.source) == (True, "systemd-timesyncd")
    assert s.as_dict()["source"] == "systemd-timesyncd"


def test_chrony_leap_status(tmp_path: Path) -> None:
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(False), run=runner({"chronyc": CHRONY_SYNCED}))
    assert (s.synchronized, s.source) == (True, "chrony")
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(None), run=runner({"chronyc": CHRONY_UNSYNCED}))
    assert (s.synchronized, s.source) == (False, "chrony")
    assert "chrony: not synchronised" in s.detail


def test_ntpd_leap_indicator(tmp_path: Path) -> None:
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(False), run=runner({"ntpq": "associd=0 status=0615 leap=00,\n"}))
    assert (s.synchronized, s.source) == (True, "ntpd")
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(None), run=runner({"ntpq": "associd=0 status=c016 leap=11,\n"}))
    assert (s.synchronized, s.source) == (False, "ntpd")


def test_nothing_to_ask_is_unknown_and_the_kernel_alone_says_unsynchronised(tmp_path: Path) -> None:
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(None), run=runner({}))
    assert (s.synchronized, s.source) == (None, "none")
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(False), run=runner({}))
    assert (s.synchronized, s.source) == (False, "kernel")
    assert "systemd-timesyncd: no" in s.detail and "chrony: not running or not installed" in s.detail


def test_a_real_chronyc_on_path_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "chronyc"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + CHRONY_SYNCED + "EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert run_command(["chronyc", "-n", "tracking"]) == CHRONY_SYNCED
    s = time_sync_status(run_dir=tmp_path, kernel=kernel(False))
    assert (s.synchronized, s.source) == (True, "chrony")


def test_readings_are_not_flagged_when_a_daemon_confirms_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    # a daemon that does not set the kernel flag (chrony without rtcsync) still counts
    monkeypatch.setattr(timesync, "time_sync_status", lambda: timesync.TimeSync(True, "chrony", ""))
    monkeypatch.setattr(timesync, "_cached", None)
    monkeypatch.setattr(timesync, "kernel_reports_synced", lambda: False)
    assert timesync.clock_synchronized(require_kernel_sync=True)
    monkeypatch.setattr(timesync, "time_sync_status", lambda: timesync.TimeSync(False, "kernel", ""))
    monkeypatch.setattr(timesync, "_cached", None)
    assert not timesync.clock_synchronized(require_kernel_sync=True)


def test_asking_the_kernel_again_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The health loop asks with every report: the C library is looked up once (``find_library`` runs
    ``ldconfig -p`` in a child process), not at each question."""
    import subprocess

    timesync.kernel_reports_synced()  # the first question may look the library up
    started: list[object] = []

    def no_process(*args, **kwargs):
        started.append(args)
        raise OSError("no child processes here")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    answers = {timesync.kernel_reports_synced() for _ in range(3)}
    assert answers <= {True, False, None}
    assert started == []
