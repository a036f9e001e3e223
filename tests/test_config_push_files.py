"""The files of a config push, without the agent: a start that never confirmed its trial (crash, kill -9,
power cut) is rolled back by the next start; the rollback keeps the refused file; a confirmed trial
becomes the active version; a stage that cannot replace the file changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.remote import ConfigFiles
from agent.remote.restart import start_trial


def staged(tmp_path: Path) -> ConfigFiles:
    files = ConfigFiles(tmp_path / "agent.toml")
    files.path.write_text("old = 1\n")
    files.path.chmod(0o640)
    files.candidate.write_text("new = 2\n")
    files.stage(b"new = 2\n", cid="cfg-1", version=3, timeout_s=30)
    return files


def test_a_trial_that_never_confirmed_is_rolled_back_at_the_next_start(tmp_path: Path) -> None:
    files = staged(tmp_path)
    assert files.path.read_text() == "new = 2\n" and files.previous.read_text() == "old = 1\n"
    assert files.previous.stat().st_mode & 0o777 == 0o640  # a config may hold secrets: same permissions
    trial = start_trial(files)  # the first start of the pushed config
    assert trial is not None and trial["version"] == 3
    # ... killed here, before it reached the broker
    assert start_trial(files) is None  # the next start rolls back
    assert files.path.read_text() == "old = 1\n"
    assert files.rejected.read_text() == "new = 2\n"
    report = files.take_report()
    assert report["status"] == "rolled_back" and report["version"] == 3 and "before" in report["reason"]
    state = files.load()
    assert state.version is None and state.highest == 3 and state.trial is None


def test_a_confirmed_trial_is_the_active_version(tmp_path: Path) -> None:
    files = staged(tmp_path)
    assert start_trial(files) is not None
    assert files.confirm()["status"] == "applied"
    assert start_trial(files) is None  # later starts are no trial
    state = files.load()
    assert state.version == 3 and state.trial is None and files.path.read_text() == "new = 2\n"


def test_a_stage_that_cannot_replace_the_file_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    files = ConfigFiles(tmp_path / "agent.toml")
    files.path.write_text("old = 1\n")
    files.candidate.write_text("new = 2\n")
    real = os.replace

    def failing(src, dst):
        if Path(src) == files.candidate:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        files.stage(b"new = 2\n", cid="cfg-1", version=3, timeout_s=30)
    monkeypatch.undo()
    assert files.path.read_text() == "old = 1\n"
    assert files.load().trial is None and files.load().highest == 0 and start_trial(files) is None
