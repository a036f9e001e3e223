"""Acknowledged rows whose delete fails (the disk is full) are remembered as sent: not published again,
not counted as waiting, and deleted as soon as the database can be written again. A real full
filesystem (a small tmpfs)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fs_helpers import fill, small_tmpfs

from agent.store.outbox import Outbox, Pending, Priority


@pytest.fixture
def outbox_on_small_fs(tmp_path: Path):
    with small_tmpfs(tmp_path / "fs", 2 * 1024 * 1024) as mnt, \
            Outbox(mnt / "outbox.db", max_bytes=1024 * 1024, gateway="gw") as outbox:
        yield outbox, mnt


def full_disk(outbox: Outbox, mnt: Path) -> Path:
    outbox.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next write must grow a file
    return fill(mnt)


def test_acknowledged_rows_are_not_resent_when_their_delete_fails(outbox_on_small_fs, caplog) -> None:
    outbox, mnt = outbox_on_small_fs
    outbox.append([Pending(Priority.RAW, "edge/gw/telemetry/m", {"n": i}) for i in range(20)])
    rows = outbox.peek(100)
    filler = full_disk(outbox, mnt)
    acked = [r.rowid for r in rows[:10]]
    assert outbox.delete(acked) == 0  # the disk is full: nothing deleted, nothing raised
    assert outbox.acked_pending_delete == 10
    assert [r.seq for r in outbox.peek(100)] == [r.seq for r in rows[10:]], "acknowledged rows are not sent again"
    stats = outbox.stats()
    assert stats.depth == 10 and stats.oldest_created_ms == rows[10].created_ms
    assert outbox.delete() == 0  # retried, still full
    assert len([r for r in caplog.records if "cannot delete" in r.getMessage()]) == 1, "logged once"

    os.unlink(filler)
    assert outbox.delete() == 10
    assert outbox.acked_pending_delete == 0 and outbox.stats().depth == 10
    assert [r.seq for r in outbox.peek(100)] == [r.seq for r in rows[10:]]


def test_the_next_commit_deletes_remembered_acknowledged_rows(outbox_on_small_fs) -> None:
    outbox, mnt = outbox_on_small_fs
    outbox.append([Pending(Priority.RAW, "edge/gw/telemetry/m", {"n": i}) for i in range(5)])
    rows = outbox.peek(100)
    filler = full_disk(outbox, mnt)
    outbox.delete([rows[0].rowid, rows[1].rowid])
    os.unlink(filler)
    outbox.append([Pending(Priority.EVENT, "edge/gw/event", {"kind": "x"})])
    assert outbox.acked_pending_delete == 0
    assert [r.seq for r in outbox.peek(100)] == [3, 4, 5, 6] and outbox.stats().depth == 4
    outbox.close()
    with Outbox(mnt / "outbox.db", max_bytes=1024 * 1024, gateway="gw") as reopened:
        assert [r.seq for r in reopened.peek(100)] == [3, 4, 5, 6], "the acknowledged rows are gone for good"


def test_deleting_any_number_of_acknowledged_rows_prepares_one_statement(tmp_path: Path) -> None:
    """SQL whose text changed with the number of rows deleted was prepared anew for each count and kept
    in sqlite3's statement cache: megabytes of memory growing for half an hour of a steady run."""
    with Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw") as outbox:
        outbox.append([Pending(Priority.RAW, "edge/gw/telemetry/m", {"n": i}) for i in range(1300)])
        shapes: set[str] = set()
        # the expanded SQL, its numbers written as # and its strings as '…': one shape per prepared statement
        outbox.db.conn.set_trace_callback(lambda sql: shapes.add(
            re.sub(r"'[^']*'", "'…'", re.sub(r"\d+", "#", sql))) if sql.startswith("DELETE") else None)
        for count in range(1, 51):
            rows = outbox.peek(count)
            assert outbox.delete([r.rowid for r in rows]) == count
        assert outbox.stats().depth == 1300 - sum(range(1, 51))
        assert len(shapes) == 1, shapes
