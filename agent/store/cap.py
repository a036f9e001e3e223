"""The outbox's disk cap (promise 2): when full, the oldest rows of the lowest priority go first, and
every drop is counted in the ``drops`` table.

Size: ``(page_count - freelist_count) * page_size``, two O(1) header reads; freed pages are reused so
the file stays near the cap without VACUUM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import orjson

from agent.store.rows import Priority

_EVICT_HEADROOM = 0.03  # evict 3 % below the limit (at most 1 MB) so not every append evicts
_EVICT_MAX_BYTES = 1024 * 1024
_EVICT_CHUNK = 256  # most rows deleted per eviction step before the size is measured again
ROW_OVERHEAD = 48  # bytes a row costs beyond topic and payload (record header, rowid, index entry)


def used_bytes(conn: sqlite3.Connection, page_size: int) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages) * page_size


def enforce_cap(conn: sqlite3.Connection, *, limit_bytes: int, page_size: int, incoming: int = 0) -> dict[int, int]:
    """Delete the oldest rows of the lowest priority until ``incoming`` more bytes fit under
    ``limit_bytes``; count the drops. Inside the caller's transaction. Returns drops per priority."""
    dropped: dict[int, int] = {}
    if used_bytes(conn, page_size) + incoming <= limit_bytes:
        return dropped
    target = limit_bytes - incoming - min(int(limit_bytes * _EVICT_HEADROOM), _EVICT_MAX_BYTES)
    for priority in Priority:
        while (need := used_bytes(conn, page_size) - target) > 0:
            # Delete about ``need`` bytes of the oldest rows, then measure again: small steps keep
            # the WAL (which holds every page an eviction touches) small too.
            ids, freed = [], 0
            for rowid, size in conn.execute(
                    "SELECT rowid, length(payload) + length(topic) + 32 FROM outbox"
                    " WHERE priority = ? ORDER BY rowid LIMIT ?", [int(priority), _EVICT_CHUNK]):
                ids.append(rowid)
                freed += size
                if freed >= need:
                    break
            if not ids:
                break
            delete_rows(conn, ids)
            dropped[priority] = dropped.get(priority, 0) + len(ids)
    persist_drops(conn, dropped)
    return dropped


# One statement for any number of rows, the ids a JSON array. SQL whose text varies with the count (an
# IN list of one ``?`` per row) is prepared anew for each count, and sqlite3's statement cache keeps the
# last 128 of them: at 100 meters x 60 values @ 100 ms, 2.5 MiB of resident memory that grew for half
# an hour. (A statement per row, executemany, took 1.5x as long for a large delete.)
_DELETE_ROWS = "DELETE FROM outbox WHERE rowid IN (SELECT value FROM json_each(?))"


def delete_rows(conn: sqlite3.Connection, ids: Iterable[int]) -> int:
    """Delete the outbox rows ``ids``; returns how many there were."""
    return conn.execute(_DELETE_ROWS, [orjson.dumps(list(ids))]).rowcount


def persist_drops(conn: sqlite3.Connection, dropped: dict[int, int]) -> None:
    for priority, n in dropped.items():
        conn.execute(
            "INSERT INTO drops (priority, count) VALUES (?, ?)"
            " ON CONFLICT(priority) DO UPDATE SET count = count + excluded.count",
            [Priority(priority).name.lower(), n],
        )
