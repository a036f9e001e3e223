"""Damaged pages and failed deletes in the outbox file.

SQLite reports a damaged page only when a statement touches it, and a database with a bad interior
b-tree page opens fine. The open reads the table's b-tree ends (root, interior and both end leaves) so
damage there is found before new rows go into the file; an open that meets SQLITE_CORRUPT (or
NOTADB/FORMAT) raises OutboxCorrupt, which the caller sets aside (store.quarantine, store.resilient).

Acknowledged rows whose delete fails (disk full) are kept aside as sent until a later delete or append
removes them: the outbox skips them when reading and leaves them out of its depth. A delete that meets
a damaged page is not one of those: it raises, so the file is set aside.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from agent.store.rows import OutboxCorrupt, OutboxError, _is_corruption, store_error

log = logging.getLogger("edge_agent.outbox")


def probe_ends(conn: sqlite3.Connection) -> None:
    """Read the first and last row through the table's b-tree: cheap, and damage on those paths is
    found now rather than after new rows went into the file."""
    conn.execute("SELECT rowid FROM outbox NOT INDEXED ORDER BY rowid LIMIT 1").fetchone()
    conn.execute("SELECT rowid FROM outbox NOT INDEXED ORDER BY rowid DESC LIMIT 1").fetchone()


def open_error(path: Path, e: BaseException) -> OutboxError:
    """The error for an outbox that cannot be opened: OutboxCorrupt when SQLite says it is damaged."""
    if isinstance(e, sqlite3.Error) and _is_corruption(e):
        return OutboxCorrupt(f"cannot open outbox {path}: it is corrupt ({e})")
    return OutboxError(f"cannot open outbox {path}: {e}")


class AckedRows:
    """Acknowledged rows still in the database: deleted by the next delete or append."""

    def __init__(self, path: Path):
        self.path = path
        self.ids: set[int] = set()
        self.max = 0  # highest rowid held: a read after it need not skip any
        self.deletes = 0  # how many times the rows held were deleted
        self._failing = False

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, rowid: object) -> bool:
        return rowid in self.ids

    def note(self, rowids: Iterable[int]) -> None:
        ids = tuple(rowids)
        self.ids.update(ids)
        if ids:
            self.max = max(self.max, max(ids))

    @property
    def failing(self) -> bool:
        """The last delete of these rows failed."""
        return self._failing

    def delete_failed(self, e: sqlite3.Error) -> None:
        """A delete failed: a damaged page raises (the file is set aside); anything else (disk full)
        keeps the rows aside as sent, logged once."""
        if _is_corruption(e):
            raise store_error(f"cannot delete acknowledged messages from {self.path}", e) from e
        if not self._failing:
            log.warning("cannot delete %d acknowledged messages from %s (%s): they are kept aside as sent "
                        "and deleted when the database can be written again", len(self.ids), self.path, e)
        self._failing = True

    def deleted(self) -> None:
        """Every row held was deleted."""
        if self._failing:
            log.info("acknowledged messages deleted from %s again", self.path)
            self._failing = False
        if self.ids:
            self.deletes += 1
        self.ids.clear()
        self.max = 0
