"""One writer per state directory: ``<state_dir>/agent.lock``, held with ``flock`` for the life of the
agent and holding its pid. The kernel releases the lock when the process ends in any way (kill -9
included), so a stale file never blocks a restart; only a live holder does."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.errors import EdgeAgentError

LOCK_NAME = "agent.lock"


class StateDirLocked(EdgeAgentError):
    """Another agent process holds the state directory; the message names its pid and the lock file."""


def lock_owner(state_dir: Path) -> int | None:
    """The pid written by the agent holding (or that last held) the lock, None if unknown."""
    try:
        text = (state_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class StateLock:
    """The exclusive lock on a state directory; ``release()`` or process exit frees it."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateDirLocked(f"cannot open lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = lock_owner(self.path.parent)
            who = f"pid {pid}" if pid else "another process"
            raise StateDirLocked(f"another edge-agent ({who}) is running with state directory {self.path.parent} "
                                 f"(lock file {self.path}); stop it first, or give this one its own "
                                 "gateway.state_dir") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the pid in the message is missing
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the pid stays in the file; the lock, not the file, says who is running
            self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
