"""One writer per outbox database: an exclusive ``flock`` on the database file itself, held while the
outbox is open for writing. The state-directory lock (statelock.py) cannot see a second agent whose own
state dir is elsewhere but whose ``[store] path`` names the same file; this lock can (the same file
through any path, symlink or bind mount is the same inode). The kernel drops it when the process ends.

``flock`` locks are separate from the POSIX record locks SQLite takes on the same file; closing this
descriptor would drop SQLite's POSIX locks of this process, so it is closed only after the connection.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.store.rows import OutboxError, OutboxLocked


def flock_holders(path: Path) -> list[int]:
    """Pids holding a ``flock`` on ``path`` (from /proc/locks; empty when unknown)."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == dev and parts[4].isdigit():
            pids.append(int(parts[4]))
    return pids


class DbLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> DbLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutboxError(f"cannot open outbox {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = [p for p in flock_holders(self.path) if p != os.getpid()]
            os.close(fd)
            who = f"pid {pids[0]}" if pids else "another process"
            raise OutboxLocked(f"outbox {self.path} is in use by another edge-agent ({who}); two agents must never "
                               "share one outbox (their seqs would collide): give this one its own [store] path, "
                               "or leave [store] path unset so the outbox lives in its own gateway.state_dir") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
