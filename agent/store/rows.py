"""The outbox's vocabulary: priorities, messages going in, rows coming out, figures, errors."""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

from agent.errors import EdgeAgentError
from agent.store.clockhold import ClockHold


class OutboxError(EdgeAgentError):
    """The outbox cannot be opened or a message cannot be stored; the message names what and where.

    ``index`` is the position of the offending message in the batch given to ``append`` (None when the
    problem is not one message), so a caller can drop that message and retry the rest.
    """

    def __init__(self, message: str, *, index: int | None = None):
        self.index = index
        super().__init__(message)


class OutboxCorrupt(OutboxError):
    """The outbox file is not a readable SQLite database (overwritten, truncated, damaged pages)."""


class OutboxMissing(OutboxError):
    """A read-only open found no outbox file (the agent has not run with this state directory)."""


class OutboxLocked(OutboxError):
    """Another process holds the outbox database open for writing (another agent)."""


def _is_corruption(e: sqlite3.Error) -> bool:
    return getattr(e, "sqlite_errorname", "").startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_FORMAT"))


def store_error(message: str, e: sqlite3.Error) -> OutboxError:
    """``e`` as OutboxCorrupt when SQLite says the file is damaged, else as OutboxError."""
    return (OutboxCorrupt if _is_corruption(e) else OutboxError)(f"{message}: {e}")


class Priority(enum.IntEnum):
    """Retention priority: when the disk cap is reached the lowest goes first (RAW first, AUDIT last)."""

    RAW = 0
    AGG = 1
    EVENT = 2
    AUDIT = 3


class Synchronous(enum.StrEnum):
    FULL = "FULL"
    NORMAL = "NORMAL"


class Pending(NamedTuple):
    priority: Priority
    topic: str
    body: dict
    readings: int = 0  # telemetry readings in the body (stored with the row for the uplink's figures)
    hold: ClockHold | None = None  # committed before clock sync: held until repaired (store.clockhold)


class OutboxRow(NamedTuple):
    rowid: int
    seq: int
    topic: str
    payload: bytes
    priority: Priority
    created_ms: int
    readings: int = 0


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_created_ms: int | None
    drops: dict[str, int]
    last_seq: int
    stream: str | None = None  # the outbox's identity (None: read-only open of an outbox without one yet)
