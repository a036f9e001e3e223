"""The ``seq`` high-water mark, kept outside the outbox database so that losing or replacing the
database can never make a ``seq`` carry a second body.

The mark file (``outbox.seq`` next to ``outbox.db``) holds two numbers:

- ``reserved``: every ``seq`` ever handed out is at most this. It is raised in blocks *before* a
  ``seq`` above it is used (written to a temporary file, fsynced, renamed, directory fsynced), so it
  costs one fsync per block, not per message.
- ``floor``: the last ``seq`` committed when the block was reserved. A database that has committed
  seqs and whose own last ``seq`` is at least ``floor`` is the one that issued them: it continues from
  its own value, and a restart (even after kill -9) leaves no gap. Any other database (new, deleted,
  quarantined, restored from a copy older than the block) continues above ``reserved``.
- ``stream``: the outbox's identity, a random UUID created with the first mark of a state directory.
  Messages carry it beside ``gateway`` and ``seq``; upstream deduplicates on (gateway, stream, seq).
  It lives exactly as long as the ``reserved`` figure that keeps its seqs unique: a replaced or
  quarantined database keeps it (its seqs continue above ``reserved``), a new state directory (a
  reinstall, a new SD card) or a lost mark gets a new one, so its restart at seq 1 collides with nothing.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import NamedTuple

import orjson

SEQ_BLOCK = 1000  # seqs reserved per fsync of the mark


class SeqMarkError(Exception):
    """The mark file cannot be read or written; the message names the file."""


class Mark(NamedTuple):
    reserved: int
    floor: int
    stream: str | None = None  # None only in a mark written before streams existed


def new_stream() -> str:
    return str(uuid.uuid4())


def mark_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.stem + ".seq")


def read_mark(path: Path) -> Mark | None:
    """The stored mark, None when there is none yet. Raises SeqMarkError when it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SeqMarkError(f"cannot read seq mark {path}: {e.strerror}") from None
    try:
        data = orjson.loads(raw)
        stream = data.get("stream")
        if stream is not None and (not isinstance(stream, str) or not stream.strip()):
            raise ValueError(stream)
        mark = Mark(int(data["reserved"]), int(data["floor"]), stream)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise SeqMarkError(f"seq mark {path} is damaged ({raw[:40]!r}); it holds the highest seq this gateway "
                           "may have used: restore it or set 'reserved' above the last seq subscribers saw") from None
    if mark.reserved < 0 or mark.floor < 0 or mark.floor > mark.reserved:
        raise SeqMarkError(f"seq mark {path} is inconsistent: reserved={mark.reserved} floor={mark.floor}")
    return mark


def write_mark(path: Path, mark: Mark) -> None:
    """Replace the mark durably (the new value is on disk before this returns)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            body = {k: v for k, v in mark._asdict().items() if v is not None}
            os.write(fd, orjson.dumps(body) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SeqMarkError(f"cannot write seq mark {path}: {e.strerror}") from None


def resume_seq(db_last: int | None, mark: Mark | None) -> int:
    """The last seq to continue from, given the database's own last seq (None when it has never
    committed one) and the stored mark."""
    if mark is None:
        return db_last or 0
    if db_last is not None and db_last >= mark.floor:
        return db_last
    return max(db_last or 0, mark.reserved)
