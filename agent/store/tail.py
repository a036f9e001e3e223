"""The rows the outbox committed last, kept for the uplink's next read.

A gateway polling every few seconds commits a few messages a cycle and the uplink reads them at once,
then reads again to find the end: two queries of the table (and a copy of every payload) per commit
for rows the outbox has just written. :class:`Tail` answers those reads from the committed rows
themselves while they are the newest in the table (rowids are AUTOINCREMENT: nothing is ever inserted
below them, nor above them but by the next append), and says "no rows" past the newest rowid without a
query. Anything else (a read further back, rows held for a clock sync, an append that evicted rows,
one too large to keep) goes to SQLite as before.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from agent.store.rows import OutboxRow, Priority

TAIL_BYTES = 1024 * 1024  # payload bytes of an append kept at most (a larger one is read back as before)


class Tail:
    __slots__ = ("end", "rows")

    def __init__(self) -> None:
        self.end: int | None = None  # the newest rowid committed by this outbox (None: not known)
        self.rows: list[OutboxRow] = []  # the rows of the last append, rowids up to ``end``

    def committed(self, end: int, rows: Sequence[tuple], *, keep: bool) -> None:
        """An append committed ``rows`` (the outbox's row tuples: seq, topic, payload, priority,
        created_ms, readings, hold_boot, …) as rowids ``end - len(rows) + 1 .. end``; ``keep``: nothing
        else in the table changed in that transaction (no eviction)."""
        self.end = end
        self.rows = []
        if keep and sum(len(r[2]) for r in rows) <= TAIL_BYTES and all(r[6] is None for r in rows):
            first = end - len(rows) + 1
            self.rows = [OutboxRow(first + i, r[0], r[1], r[2], Priority(r[3]), r[4], r[5])
                         for i, r in enumerate(rows)]

    def forget(self) -> None:
        """Rows were deleted outside an append: read them from the table again (the end still holds)."""
        self.rows = []

    def read(self, limit: int, after_rowid: int, acked: Container[int]) -> list[OutboxRow] | None:
        """What :meth:`Outbox.peek` would return, or None when the table must be asked."""
        end = self.end
        if end is None:
            return None
        if after_rowid >= end:  # nothing past the newest row; the reader is past the rows kept
            self.rows = []
            return []
        rows = self.rows
        if not rows or after_rowid < rows[0].rowid - 1:
            return None
        return [r for r in rows if r.rowid > after_rowid and r.rowid not in acked][:limit]
