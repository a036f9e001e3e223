"""Opening the agent's outbox: a corrupt database is set aside (renamed, kept for the technician) and
a new one started, instead of failing on every start. The new outbox continues above every ``seq``
ever issued (seqmark.py), so nothing upstream sees a ``seq`` twice with different bodies."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from agent.store.outbox import Outbox, OutboxCorrupt, OutboxError

_COMPANIONS = ("", "-wal", "-shm")  # SQLite's write-ahead log and its index travel with the database


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A corrupt outbox that was set aside."""

    path: Path  # where the outbox was
    moved_to: Path  # the database file's new name (its -wal/-shm, if any, sit next to it)
    reason: str
    resumed_seq: int  # the new outbox's first message gets this + 1
    unsent: int | None = None  # messages not yet acknowledged that stay in the file set aside (None: unknown)

    def event(self, ts_ms: int) -> dict:
        """The body published on the event topic."""
        return {"v": 1, "kind": "outbox_quarantined", "ts": ts_ms, "path": str(self.path),
                "moved_to": str(self.moved_to), "reason": self.reason, "resumed_seq": self.resumed_seq,
                "unsent": self.unsent}


def quarantine_name(path: Path, when_s: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when_s))
    return path.with_name(f"{path.name}.corrupt-{stamp}")


def quarantined_files(path: Path) -> list[Path]:
    """Outbox databases set aside earlier, oldest first."""
    return sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))


def set_aside(path: Path, when_s: float | None = None) -> Path:
    """Rename the database and its -wal/-shm files to ``<name>.corrupt-<UTC time>``; returns the new name."""
    base = quarantine_name(path, time.time() if when_s is None else when_s)
    target, n = base, 1
    while any(Path(f"{target}{s}").exists() for s in _COMPANIONS):  # set aside twice in one second: keep both
        target, n = base.with_name(f"{base.name}.{n}"), n + 1
    for suffix in _COMPANIONS:
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.replace(src, Path(f"{target}{suffix}"))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def open_outbox(path: Path, *, max_bytes: int, gateway: str) -> tuple[Outbox, Quarantined | None]:
    """Open the agent's outbox for writing; a corrupt one is set aside and replaced by a new one."""
    try:
        return Outbox(path, max_bytes=max_bytes, gateway=gateway), None
    except OutboxCorrupt as e:
        reason = str(e.__cause__ or e)
    try:
        moved_to = set_aside(path)
    except OSError as e:
        raise OutboxError(f"outbox {path} is corrupt ({reason}) and cannot be set aside: {e.strerror}") from None
    outbox = Outbox(path, max_bytes=max_bytes, gateway=gateway)
    return outbox, Quarantined(path=path, moved_to=moved_to, reason=reason, resumed_seq=outbox.last_seq)
