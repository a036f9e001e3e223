"""The files of a config push, all beside the config file ``P`` (the state directory is named by the
config itself, so it cannot hold what decides which config runs):

* ``P`` - the active config; replaced atomically (``os.replace``) by a pushed one;
* ``P.previous`` - the config before the last push: the rollback copy;
* ``P.rejected`` - a pushed config that was rolled back, kept for inspection;
* ``P.push.json`` - the push state: active version and hash, the highest version ever staged (replay
  guard), the trial in progress and the outcome still to be reported upstream.

A trial is the first start of a pushed config. ``edge-agent run`` counts its starts: a second start of
the same trial means the first ended without confirming (crash, kill, power cut), so it rolls back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so a reader (or a power cut) sees the old or the new file, never half.
    ``mode``: the file's permissions (a config may hold secrets: the config's own, by default 0600)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class PushState:
    version: int | None = None  # the active config's pushed version (None: never pushed)
    sha256: str | None = None  # of the active config's bytes (None: not recorded yet)
    highest: int = 0  # highest version ever staged: a push must carry a higher one
    trial: dict[str, Any] | None = None  # {"id", "version", "sha256", "previous_version", "timeout_s", "starts"}
    report: dict[str, Any] | None = None  # an outcome to publish on the result topic at the next connection

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__, option=orjson.OPT_INDENT_2)


class ConfigFiles:
    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()
        self.previous = self.path.with_name(self.path.name + ".previous")
        self.rejected = self.path.with_name(self.path.name + ".rejected")
        self.candidate = self.path.with_name(self.path.name + ".candidate")
        self.state_path = self.path.with_name(self.path.name + ".push.json")

    def load(self) -> PushState:
        try:
            raw = orjson.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return PushState()
        except (OSError, orjson.JSONDecodeError, TypeError):
            return PushState()  # a damaged state file: start afresh (the config itself is intact)
        fields = PushState.__dataclass_fields__
        return PushState(**{k: v for k, v in raw.items() if k in fields})

    def save(self, state: PushState) -> None:
        write_atomic(self.state_path, state.to_json())

    def mode(self) -> int:
        """The config file's permissions, given to every copy of it."""
        try:
            return self.path.stat().st_mode & 0o777
        except OSError:
            return 0o600

    def active_sha256(self) -> str | None:
        try:
            return sha256_hex(self.path.read_bytes())
        except OSError:
            return None

    def stage(self, data: bytes, *, cid: str, version: int, timeout_s: float) -> dict[str, Any]:
        """Make ``data`` (already written to ``self.candidate`` and validated) the config of the next start.
        The current config becomes the rollback copy. Returns the trial record."""
        state = self.load()
        current = self.path.read_bytes()
        write_atomic(self.previous, current, self.mode())
        trial = {"id": cid, "version": version, "sha256": sha256_hex(data), "previous_version": state.version,
                 "previous_sha256": sha256_hex(current), "timeout_s": timeout_s, "starts": 0}
        highest = state.highest
        state.highest = max(state.highest, version)
        state.trial = trial
        state.report = None
        self.save(state)  # first: a trial recorded without the new file only rolls back to the same bytes
        try:
            os.replace(self.candidate, self.path)
        except OSError:
            state.trial, state.highest = None, highest
            self.save(state)
            raise
        _sync_dir(self.path.parent)
        return trial

    def begin_start(self, *, count: bool = True) -> tuple[dict[str, Any] | None, str | None]:
        """Called by ``run`` before anything else: counts a start of the trial. Returns (trial, reason to
        roll back now or None). ``count=False``: the same start, re-executed (it was counted)."""
        state = self.load()
        trial = state.trial
        if trial is None or not count:
            return trial, None
        if trial.get("starts", 0) >= 1:
            return trial, "the agent stopped before the new config was confirmed (it crashed or was stopped)"
        trial["starts"] = trial.get("starts", 0) + 1
        self.save(state)
        return trial, None

    def rollback(self, reason: str) -> None:
        """Put the rollback copy back; keep the refused config as ``P.rejected``; record the outcome."""
        state = self.load()
        trial = state.trial or {}
        if self.previous.exists():
            with contextlib.suppress(OSError):
                os.replace(self.path, self.rejected)
            os.replace(self.previous, self.path)
            _sync_dir(self.path.parent)
        state.version = trial.get("previous_version", state.version)
        state.sha256 = trial.get("previous_sha256") or self.active_sha256()
        state.trial = None
        state.report = {"id": trial.get("id"), "version": trial.get("version"), "status": "rolled_back",
                        "code": "rolled_back", "reason": reason, "active_version": state.version}
        self.save(state)

    def confirm(self) -> dict[str, Any] | None:
        """The trial reached the broker: its config is now the active one. Returns the outcome to report."""
        state = self.load()
        trial = state.trial
        if trial is None:
            return None
        state.version, state.sha256, state.trial = trial["version"], trial["sha256"], None
        state.report = {"id": trial["id"], "version": trial["version"], "status": "applied",
                        "active_version": trial["version"], "sha256": trial["sha256"]}
        self.save(state)
        return state.report

    def take_report(self) -> dict[str, Any] | None:
        """The outcome still to be published, removed from the state (the outbox holds it from now on)."""
        state = self.load()
        report = state.report
        if report is not None:
            state.report = None
            self.save(state)
        return report
