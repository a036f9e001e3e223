"""A thin wrapper over a ``sqlite3`` connection: transactions (savepoints when nested), WAL mode,
table names. Plain ``sqlite3`` keeps the agent's memory small (sqlite-utils and its imports cost
several MB for the few calls the outbox needs)."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

_savepoints = itertools.count(1)


class Db:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Db]:
        """One transaction (a savepoint inside an open one): committed on success, rolled back on any error."""
        c = self.conn
        if c.in_transaction:
            name = f"sp_{next(_savepoints)}"
            c.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                if c.in_transaction:  # an error may already have ended the whole transaction
                    c.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    c.execute(f"RELEASE SAVEPOINT {name}")
                raise
            c.execute(f"RELEASE SAVEPOINT {name}")
            return
        c.execute("BEGIN")
        try:
            yield self
        except BaseException:
            c.rollback()
            raise
        try:
            c.execute("COMMIT")
        except BaseException:
            c.rollback()
            raise

    def enable_wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self.conn.execute("PRAGMA journal_mode=wal")

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def close(self) -> None:
        self.conn.close()
