"""Idempotency: remember each command id and its outcome, durably, bounded.

Ids live in a small SQLite file in the state directory (``commands.db``) so a replayed command is
recognised across restarts; the oldest ids beyond ``limit`` are forgotten. Every write is committed
with ``synchronous = FULL`` (fsync), so an id the store reports as recorded survives a power cut.

Before a device is touched the router records the id as ``in_progress`` with :meth:`IdStore.begin`;
when that fails (disk full, read-only or missing state directory) the command is refused, never
executed. If the store cannot be opened now it is retried on the next command: a freed disk recovers.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

IN_PROGRESS = "in_progress"


class IdStoreUnavailable(Exception):
    """The id store cannot read or record ids right now; the message says why."""


class IdStore:
    def __init__(self, path: Path, *, limit: int):
        self.path = path
        self.limit = limit
        self._db: sqlite3.Connection | None = None
        self._last_error: str | None = None
        with contextlib.suppress(IdStoreUnavailable):  # logged; retried on the next command
            self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=full")
            db.execute("create table if not exists seen (id text primary key, ts_ms integer, result blob)")
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            raise self._failure(e) from None
        self._db = db
        self._last_error = None
        return db

    def _failure(self, e: BaseException) -> IdStoreUnavailable:
        reason = f"command id store {self.path} cannot be written: {(e.strerror if isinstance(e, OSError) else None) or e}"
        if reason != self._last_error:
            log.warning("%s; commands are refused until it can be written", reason)
            self._last_error = reason
        return IdStoreUnavailable(reason)

    def get(self, cmd_id: str) -> dict[str, Any] | None:
        """The recorded outcome (or ``in_progress`` record) of ``cmd_id``, None if unknown."""
        db = self._connect()
        try:
            row = db.execute("select result from seen where id = ?", (cmd_id,)).fetchone()
        except sqlite3.Error as e:
            raise self._failure(e) from None
        return orjson.loads(row[0]) if row else None

    def begin(self, cmd_id: str, ts_ms: int, record: dict[str, Any]) -> dict[str, Any] | None:
        """Durably record ``cmd_id`` as in progress. Returns the existing record instead if the id is
        already known (nothing written). Raises :class:`IdStoreUnavailable` if it cannot be recorded."""
        return self._insert(cmd_id, ts_ms, {**record, "status": IN_PROGRESS})

    def put(self, cmd_id: str, ts_ms: int, result: dict[str, Any]) -> dict[str, Any] | None:
        """Record a final outcome for a new id (like :meth:`begin`, but already finished)."""
        return self._insert(cmd_id, ts_ms, result)

    def finish(self, cmd_id: str, result: dict[str, Any]) -> None:
        """Replace the in-progress record of ``cmd_id`` with its outcome."""
        db = self._connect()
        try:
            db.execute("update seen set result = ? where id = ?", (orjson.dumps(result), cmd_id))
        except sqlite3.Error as e:
            raise self._failure(e) from None

    def _insert(self, cmd_id: str, ts_ms: int, result: dict[str, Any]) -> dict[str, Any] | None:
        db = self._connect()
        try:
            db.execute("begin immediate")
            try:
                row = db.execute("select result from seen where id = ?", (cmd_id,)).fetchone()
                if row is not None:
                    db.execute("rollback")
                    return orjson.loads(row[0])
                db.execute("insert into seen values (?, ?, ?)", (cmd_id, ts_ms, orjson.dumps(result)))
                (n,) = db.execute("select count(*) from seen").fetchone()
                if n > self.limit:
                    db.execute("delete from seen where rowid in (select rowid from seen order by rowid limit ?)",
                               (n - self.limit,))
                db.execute("commit")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("rollback")
                raise
        except sqlite3.Error as e:
            raise self._failure(e) from None
        return None

    def __len__(self) -> int:
        db = self._connect()
        return int(db.execute("select count(*) from seen").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
