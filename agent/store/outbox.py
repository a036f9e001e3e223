"""The SQLite outbox: every message is committed here before it is published, and deleted only after
the broker acknowledged it (promise 1). Its size is capped; the oldest raw telemetry goes first (promise 2).

One row = one encoded MQTT message. Each row gets a per-gateway ``seq`` that increases monotonically,
is persisted, and is never reused (not even after rows are deleted), and the outbox's ``stream`` (its
identity, see seqmark.py), so subscribers can drop duplicates by (gateway, stream, seq).

Durability: WAL with ``synchronous=FULL`` by default. With NORMAL a power cut can roll back the last
commits *after* their rows were published; the next run would then hand the same ``seq`` to different
data and subscribers would drop it as a duplicate. FULL syncs the WAL on every commit; at the batched
commit rate the agent uses (a few commits per second, ~100 readings each) the cost is small
(tests/bench/bench_store.py: at 100 messages per commit FULL ran at 0.6-0.8x of NORMAL, 11-27k msgs/s
of 10 readings; at 1 per commit 0.2-0.5x). NORMAL stays available for benchmarks. Inserts use plain
``executemany`` (1.4-1.8x sqlite-utils ``insert_all`` in the same benchmark); schema and migrations
use plain SQL too (agent.store.db).

The disk cap is enforced by store.cap; the WAL is bounded separately by a checkpoint threshold and
``journal_size_limit`` sized from the cap, and that budget is subtracted from it. Damaged pages and
failed deletes: store.damage; messages held for a clock sync: store.clockhold.

Used from one thread only (the asyncio loop thread).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from agent.store.cap import ROW_OVERHEAD, delete_rows, enforce_cap, persist_drops, used_bytes
from agent.store.clockhold import ReleasedMark, hold_columns, unheld_clause
from agent.store.damage import AckedRows, open_error, probe_ends
from agent.store.db import Db
from agent.store.dblock import DbLock
from agent.store.migrations import MIGRATIONS, current_version, migrate
from agent.store.rows import (  # noqa: F401 - the outbox's public names, re-exported
    OutboxCorrupt,
    OutboxError,
    OutboxLocked,
    OutboxMissing,
    OutboxRow,
    OutboxStats,
    Pending,
    Priority,
    Synchronous,
    store_error,
)
from agent.store.seqmark import (
    SEQ_BLOCK,
    Mark,
    SeqMarkError,
    mark_path,
    new_stream,
    read_mark,
    resume_seq,
    write_mark,
)
from agent.store.tail import Tail

log = logging.getLogger("edge_agent.outbox")

MIN_BYTES = 256 * 1024
CACHE_KIB = 512  # SQLite page cache of the outbox connection
_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Outbox:
    """The outbox of one state directory. ``readonly=True`` (for inspection while an agent may be
    running) never creates or changes a file: it raises OutboxMissing when there is no outbox, and
    ``append``/``delete`` are refused."""

    def __init__(self, path: Path, *, max_bytes: int, gateway: str,
                 synchronous: Synchronous = Synchronous.FULL, now_ms: Callable[[], int] = _wall_ms,
                 readonly: bool = False):
        if max_bytes < MIN_BYTES:
            raise OutboxError(f"outbox max_bytes {max_bytes} is below the {MIN_BYTES}-byte minimum (the SQLite "
                              "database, its write-ahead log and 32 KB shared-memory index must fit in the cap)")
        if not gateway:
            raise OutboxError("outbox gateway id is empty")
        self.path = Path(path)
        self.gateway = gateway
        self.max_bytes = max_bytes
        self.readonly = readonly
        self._now_ms = now_ms
        self._mark_path = mark_path(self.path)
        self._reserved = 0
        self._closed = True
        self._acked = AckedRows(self.path)  # acknowledged, not yet deleted: sent, to be deleted
        self._unsaved_drops: dict[int, int] = {}  # drops counted while nothing could be written
        self._released = ReleasedMark()  # rows released from a clock hold since take_released()
        self._tail = Tail()  # the rows committed last, for the uplink's next peek
        conn: sqlite3.Connection | None = None
        self._lock: DbLock | None = None
        try:
            if readonly:
                conn = self._connect_readonly()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock = DbLock(self.path).acquire()  # one writer per database file, whatever its state dir
                conn = sqlite3.connect(str(self.path))
            self.db = Db(conn)
            if readonly:
                self._open_readonly()
            else:
                self._open(Synchronous(synchronous))
        except (sqlite3.DatabaseError, OSError, RuntimeError, SeqMarkError) as e:
            if conn is not None:
                conn.close()
            if self._lock is not None:
                self._lock.release()
            raise open_error(self.path, e) from e

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise OutboxMissing(f"no outbox at {self.path}: the agent has not run with this state directory")
        # With a write-ahead log present (an agent running, or killed) read through it; without one the
        # database file is complete, and 'immutable' reads it without creating -wal/-shm files.
        wal = self.path.with_name(self.path.name + "-wal").exists()
        uri = f"{self.path.resolve().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
        return sqlite3.connect(uri, uri=True)

    def _open_readonly(self) -> None:
        c = self.db.conn
        self.page_size = int(c.execute("PRAGMA page_size").fetchone()[0])
        version = current_version(self.db)
        if version == 0 or "outbox" not in self.db.table_names():
            raise RuntimeError("it holds no outbox tables")
        if version > len(MIGRATIONS):
            raise RuntimeError(f"outbox schema version {version} is newer than this agent ({len(MIGRATIONS)})")
        self.limit_bytes = self.max_bytes
        self._load_counters()
        self.stream: str | None = None  # None: no mark yet (or unreadable)
        with contextlib.suppress(SeqMarkError):  # inspection only: the agent reports a damaged mark
            mark = read_mark(self._mark_path)
            self._last_seq = resume_seq(self._db_last, mark)
            self.stream = mark.stream if mark else None

    def _open(self, synchronous: Synchronous) -> None:
        c = self.db.conn
        self.page_size = int(c.execute("PRAGMA page_size").fetchone()[0])
        self.db.enable_wal()
        c.execute(f"PRAGMA synchronous={synchronous.value}")
        # Debian (and Raspberry Pi OS) build SQLite with secure_delete on: every page a delete frees is
        # zeroed and written to the WAL, so deleting sent rows wrote their whole payload again (6x the
        # CPU of FAST, and a WAL far past its budget after a drain's delete). FAST clears deleted
        # content only on pages written anyway.
        c.execute("PRAGMA secure_delete=FAST")
        # The page cache: SQLite's default (2 MB) fills within seconds at a high poll rate and stays
        # resident; the outbox touches only its two ends (appends and the uplink's reads at the tail,
        # deletes at the head), and the operating system caches the file as well.
        c.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        # WAL budget: checkpoint every max_bytes/32 (at most the usual 4 MB) and truncate back to it.
        # The WAL briefly holds that plus one transaction (an append and its eviction step), and the
        # -shm file is 32 KB: reserve 4 budgets + 32 KB of the cap for them.
        wal_budget = min(self.max_bytes // 32, 4 * 1024 * 1024)
        c.execute(f"PRAGMA wal_autocheckpoint={max(8, wal_budget // self.page_size)}")
        c.execute(f"PRAGMA journal_size_limit={wal_budget}")
        self.limit_bytes = self.max_bytes - 4 * wal_budget - 32 * 1024
        with self.db.atomic():
            migrate(self.db)
        self._load_counters()
        # Continue above every seq ever issued (see seqmark.py). With synchronous=NORMAL a power cut can
        # roll back published commits, so the database's own value is not trusted then.
        mark = read_mark(self._mark_path)
        trusted = self._db_last if synchronous is Synchronous.FULL else None
        self._last_seq = max(self._last_seq, resume_seq(trusted, mark))
        self._reserved = mark.reserved if mark else 0
        self.stream = mark.stream if mark and mark.stream else self._new_stream(mark)

    def _new_stream(self, mark: Mark | None) -> str:
        """A new state directory (or a mark from before streams): create its stream identity and
        store it before any message can carry it."""
        stream = new_stream()
        self._reserved = max(self._reserved, self._last_seq)
        write_mark(self._mark_path, Mark(reserved=self._reserved, floor=mark.floor if mark else self._last_seq,
                                         stream=stream))
        log.info("outbox %s: new stream %s (seq continues after %d)", self.path, stream, self._last_seq)
        return stream

    def _load_counters(self) -> None:
        c = self.db.conn
        row = c.execute("SELECT last_seq FROM sequence WHERE gateway = ?", [self.gateway]).fetchone()
        self._db_last: int | None = int(row[0]) if row else None  # None: never committed a message
        self._last_seq = self._db_last or 0
        self._depth = int(c.execute("SELECT count(*) FROM outbox").fetchone()[0])  # counted on the index
        self._hold_cols = current_version(self.db) >= 3  # an older database read-only: nothing is held
        probe_ends(c)
        self._drops = {p.name.lower(): 0 for p in Priority}
        for name, count in c.execute("SELECT priority, count FROM drops"):
            self._drops[name] = int(count)
        self._closed = False

    @property
    def last_seq(self) -> int:
        """The last seq issued (the next message gets this + 1)."""
        return self._last_seq

    def _reserve(self, last: int) -> None:
        """Make sure the mark covers ``last`` before any seq up to it is committed."""
        if last <= self._reserved:
            return
        reserved = last + SEQ_BLOCK
        try:
            write_mark(self._mark_path, Mark(reserved=reserved, floor=self._last_seq, stream=self.stream))
        except SeqMarkError as e:
            raise OutboxError(str(e)) from None
        self._reserved = reserved

    # ------------------------------------------------------------------------------------ writing
    def append(self, items: Sequence[Pending]) -> list[int]:
        """Store messages in one transaction and return their seqs; then enforce the disk cap (same
        transaction). Each body dict gets ``gateway``, ``stream`` and ``seq`` set in place. One writer process only.

        Raises OutboxError (``index`` names the bad message) before anything is written when a
        message is malformed; nothing is stored and no seq is used up. The same transaction deletes
        acknowledged rows whose earlier delete failed and records drops counted meanwhile.
        """
        self._check_writable()
        if not items:
            return []
        now = self._now_ms()
        seq0 = self._last_seq + 1
        rows = [self._encode(i, item, seq0 + i, now) for i, item in enumerate(items)]
        last = seq0 + len(rows) - 1
        self._reserve(last)
        c = self.db.conn
        incoming = sum(len(r[1]) + len(r[2]) + ROW_OVERHEAD for r in rows)
        try:
            with self.db.atomic():
                acked_deleted = self._delete_rows(sorted(self._acked.ids))
                persist_drops(c, self._unsaved_drops)
                # make room first, so the database file never grows past the limit (a page that was
                # once used stays in the file: SQLite does not shrink it without VACUUM)
                dropped = self._enforce_cap(incoming)
                c.executemany(
                    "INSERT INTO outbox (seq, topic, payload, priority, created_ms, readings, hold_boot,"
                    " hold_offset_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                end = c.execute("SELECT last_insert_rowid()").fetchone()[0]
                c.execute(
                    "INSERT INTO sequence (gateway, last_seq) VALUES (?, ?)"
                    " ON CONFLICT(gateway) DO UPDATE SET last_seq = excluded.last_seq",
                    [self.gateway, last],
                )
                for priority, n in self._enforce_cap().items():  # estimates are estimates
                    dropped[priority] = dropped.get(priority, 0) + n
        except sqlite3.Error as e:
            raise store_error(f"cannot store {len(rows)} messages in {self.path}", e) from e
        self._last_seq = last
        self._tail.committed(end, rows, keep=not dropped)
        self._depth += len(rows) - acked_deleted
        self._acked.deleted()
        self._unsaved_drops = {}
        self._apply_drops(dropped)
        return list(range(seq0, last + 1))

    def _encode(self, index: int, item: Any, seq: int, now: int) -> tuple:
        try:
            priority, topic, body, readings, hold = Pending(*item)
            priority, readings = Priority(priority), int(readings)
            hold_boot, hold_offset = hold_columns(hold)
        except (TypeError, ValueError, IndexError) as e:
            raise OutboxError(f"message {index}: not a Pending(priority, topic, body, readings): {e}",
                              index=index) from None
        if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
            raise OutboxError(f"message {index}: invalid topic {topic!r}", index=index)
        if not isinstance(body, dict):
            raise OutboxError(f"message {index} for {topic}: body must be a dict, got {type(body).__name__}",
                              index=index)
        body["gateway"] = self.gateway
        body["stream"] = self.stream
        body["seq"] = seq
        try:
            payload = orjson.dumps(body, option=_ORJSON_OPTS)
        except TypeError as e:
            raise OutboxError(f"message {index} for {topic}: body is not JSON-serialisable: {e}",
                              index=index) from None
        return (seq, topic, payload, int(priority), now, readings, hold_boot, hold_offset)

    def _used_bytes(self) -> int:
        return used_bytes(self.db.conn, self.page_size)

    def _enforce_cap(self, incoming: int = 0) -> dict[int, int]:
        return enforce_cap(self.db.conn, limit_bytes=self.limit_bytes, page_size=self.page_size, incoming=incoming)

    def count_drops(self, dropped: dict[Priority, int]) -> None:
        """Count messages dropped before they reached the outbox (e.g. evicted from memory while the
        disk was full) in the same drop counters; they are persisted with the next append."""
        for priority, n in dropped.items():
            self._unsaved_drops[int(priority)] = self._unsaved_drops.get(int(priority), 0) + n
            self._drops[Priority(priority).name.lower()] += n

    def _apply_drops(self, dropped: dict[int, int]) -> None:
        for priority, n in dropped.items():
            self._drops[Priority(priority).name.lower()] += n
            self._depth -= n

    def mark_acked(self, rowids: Iterable[int]) -> None:
        """Acknowledged rows, deleted by the next :meth:`append` (in its transaction) or :meth:`delete`;
        meanwhile :meth:`peek` skips them and the depth leaves them out. Costs no I/O."""
        self._check_writable()
        self._acked.note(rowids)

    def delete(self, rowids: Iterable[int] = ()) -> int:
        """Delete acknowledged rows (missing ones are ignored). Returns how many were deleted.

        When the delete fails (disk full), the rows are remembered as acknowledged until a later
        ``delete`` or ``append`` removes them: meanwhile :meth:`peek` skips them (they are not sent
        again) and the depth leaves them out. Call with no rowids to retry only those.
        """
        self._check_writable()
        self._acked.note(rowids)
        if not self._acked:
            return 0
        try:
            with self.db.atomic():
                deleted = self._delete_rows(sorted(self._acked.ids))
        except sqlite3.Error as e:
            self._acked.delete_failed(e)  # a damaged page raises; a full disk keeps them aside
            return 0
        self._depth -= deleted
        self._acked.deleted()
        self._tail.forget()
        return deleted

    @property
    def acked_pending_delete(self) -> int:
        """Acknowledged rows still in the database because deleting them failed. Rows acknowledged
        since the last commit are not counted: the next append (or the uplink's flush) deletes them
        without a transaction of their own."""
        return len(self._acked) if self._acked.failing else 0

    @property
    def acked_waiting(self) -> tuple[int, int]:
        """(acknowledged rows not deleted yet, how many times such rows were deleted so far): a change in
        the second says a commit or delete took the rows acknowledged before."""
        return len(self._acked), self._acked.deletes

    def _delete_rows(self, ids: list[int]) -> int:
        return delete_rows(self.db.conn, ids)

    # ------------------------------------------------------------------------------------ reading
    def peek(self, limit: int, after_rowid: int = 0, *, held: bool = False) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows with rowid > ``after_rowid``, oldest first; rows held
        for a clock sync (store.clockhold) only with ``held``."""
        self._check_open()
        kept = self._tail.read(limit, after_rowid, self._acked)
        return kept if kept is not None else self._peek_db(limit, after_rowid, held=held)

    def _peek_db(self, limit: int, after_rowid: int, *, held: bool) -> list[OutboxRow]:
        rows: list[OutboxRow] = []
        where = unheld_clause(held=held, hold_columns_present=self._hold_cols)
        while len(rows) < limit:
            want = limit - len(rows)
            # acknowledged rows not yet deleted are skipped; the uplink reads after its cursor, above
            # every row it has had acknowledged, so it never reads (or copies) one of them again
            skip = after_rowid < self._acked.max
            ask = want + min(len(self._acked), 10_000) if skip else want
            try:
                batch = self.db.conn.execute(
                    "SELECT rowid, seq, topic, payload, priority, created_ms, readings FROM outbox"
                    f" WHERE rowid > ?{where} ORDER BY rowid LIMIT ?", [after_rowid, ask]).fetchall()
            except sqlite3.Error as e:
                raise store_error(f"cannot read outbox {self.path}", e) from e
            rows += [OutboxRow(r[0], r[1], r[2], bytes(r[3]), Priority(r[4]), r[5], r[6])
                     for r in batch if not skip or r[0] not in self._acked][:want]
            if len(batch) < ask or not skip:
                break
            after_rowid = batch[-1][0]
        return rows

    def released(self, rowid: int) -> None:
        """Rows from ``rowid`` on were released from a clock hold (the uplink looks back for them)."""
        self._released.note(rowid)

    def take_released(self) -> int | None:
        """The lowest rowid released since the last call (None: none); for the uplink."""
        return self._released.take()

    def stats(self) -> OutboxStats:
        self._check_open()
        try:
            oldest = next((created for rowid, created in self.db.conn.execute(
                "SELECT rowid, created_ms FROM outbox ORDER BY rowid LIMIT ?", [len(self._acked) + 1])
                if rowid not in self._acked), None)  # the oldest not yet acknowledged
            used = self._used_bytes()
        except sqlite3.Error as e:
            raise store_error(f"cannot read outbox {self.path}", e) from e
        return OutboxStats(depth=self.unsent, bytes=used, oldest_created_ms=oldest,
                           drops=dict(self._drops), last_seq=self._last_seq, stream=self.stream)

    @property
    def unsent(self) -> int:
        """Messages stored and not acknowledged (a counter: no I/O)."""
        return max(0, self._depth - len(self._acked))

    def export(self, fh: IO[str], *, limit: int | None = None) -> int:
        """Write pending rows as JSON lines (oldest first) for a technician. Returns the row count."""
        self._check_open()
        n = 0
        after = 0
        while limit is None or n < limit:
            batch = self.peek(min(1000, limit - n) if limit is not None else 1000, after, held=True)
            if not batch:
                break
            for r in batch:
                try:
                    body: Any = orjson.loads(r.payload)
                except orjson.JSONDecodeError:
                    body = r.payload.decode("utf-8", "replace")
                fh.write(orjson.dumps({"rowid": r.rowid, "seq": r.seq, "topic": r.topic,
                                       "priority": r.priority.name.lower(), "created_ms": r.created_ms,
                                       "body": body}).decode() + "\n")
                n += 1
            after = batch[-1].rowid
        return n

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.close()
        if self._lock is not None:
            self._lock.release()  # after the connection: SQLite's own locks on the file are gone by then
            self._lock = None

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise OutboxError(f"outbox {self.path} is open read-only")

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
