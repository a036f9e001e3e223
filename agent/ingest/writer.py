"""One batch of deliveries -> one PostgreSQL transaction, exactly once per (gateway, stream, seq).

Order of work inside the transaction, every step in key order so that two consumers writing
overlapping batches wait for each other instead of deadlocking:

1. insert the batch's keys into the ledger (``messages``), sorted, ``ON CONFLICT DO NOTHING
   RETURNING``: the keys that come back are new, the others were committed before (duplicates);
2. COPY the rows of the new keys into the data tables;
3. lock the affected ``streams`` rows (sorted) and update their seq span and ``gaps``;
4. upsert status/health (sorted by gateway), store rejected messages; commit.

A deadlock or serialisation failure (which sorting should make impossible) rolls back and retries;
a lost database connection reconnects and retries with backoff. The caller acknowledges the
deliveries only after :meth:`Writer.write` returned.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
from psycopg import sql

from agent.ingest import gaps as gapmath
from agent.ingest.migrate import ensure_partitions
from agent.ingest.parse import Key, Message, Status

log = logging.getLogger("edge_agent.ingest")

_COPY = {
    "readings": "ts, gateway, stream, seq, device, metric, value, unit, quality",
    "aggregates": "ts, ts_end, gateway, stream, seq, device, window_, metric, unit, count, min, max, mean, delta, body",
    "energy": "ts, ts_end, gateway, stream, seq, device, window_, kwh, cost, currency, kgco2e, body",
    "events": "ts, gateway, stream, seq, kind, topic, body",
}
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_PARTITION_EVERY = 3600.0


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    messages: int = 0  # new (gateway, stream, seq) committed
    duplicates: int = 0
    readings: int = 0
    rejected: int = 0
    deadlocks: int = 0  # retried transactions
    reconnects: int = 0
    gaps_opened: int = 0
    gaps_closed: int = 0
    commit_s: float = 0.0
    lag_ms: list[float] = field(default_factory=list)  # commit time - newest data ts, per new message (bounded)

    def snapshot(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if k != "lag_ms"}


class Writer:
    def __init__(self, dsn: str, *, connect_timeout: float = 10.0, now: Callable[[], float] = time.time,
                 keep_lags: int = 0):
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.now = now
        self.keep_lags = keep_lags
        self.stats = WriterStats()
        self.conn: psycopg.Connection | None = None
        self._partitioned_at = -_PARTITION_EVERY

    def connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, connect_timeout=int(self.connect_timeout))
        if time.monotonic() - self._partitioned_at >= _PARTITION_EVERY:
            ensure_partitions(self.conn)
            self._partitioned_at = time.monotonic()
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def write(self, messages: Sequence[Message], statuses: Sequence[Status] = (),
              rejected: Sequence[tuple[str, str, bytes]] = (), *, stop: Callable[[], bool] = lambda: False) -> int:
        """Commit one batch; returns how many messages were new. Retries until committed (or ``stop()``)."""
        delay = 0.05
        while True:
            try:
                conn = self.connect()
                new = self._transaction(conn, messages, statuses, rejected)
                self.stats.batches += 1
                return new
            except _RETRYABLE as e:
                self.stats.deadlocks += 1
                log.warning("batch rolled back (%s); retrying", type(e).__name__)
                time.sleep(random.uniform(0.0, 0.05))
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as e:
                # one message the database cannot take (a NUL in a string, a number out of range ...)
                # must not block the queue forever: write one by one, reject what fails, with the reason
                if len(messages) + len(statuses) <= 1:
                    raise
                log.warning("batch refused by the database (%s); writing its messages one by one", e)
                return self._one_by_one(messages, statuses, rejected)
            except psycopg.OperationalError as e:
                self.stats.reconnects += 1
                log.warning("database unavailable (%s); retrying in %.1f s", str(e).strip().splitlines()[0], delay)
                if self.conn is not None:
                    self.conn.close()
                if stop():
                    raise
                time.sleep(delay)
                delay = min(5.0, delay * 2)

    def _one_by_one(self, messages: Sequence[Message], statuses: Sequence[Status],
                    rejected: Sequence[tuple[str, str, bytes]]) -> int:
        new = 0
        bad = list(rejected)
        for m in messages:
            try:
                new += self.write([m])
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as e:
                reason = f"database refused it: {str(e).strip().splitlines()[0]}"
                bad.append((m.topic, reason, orjson.dumps(m.body)))
        for st in statuses:
            try:
                self.write([], [st])
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as e:
                bad.append((f"{st.gateway}/{st.kind}", f"database refused it: {e}", orjson.dumps(st.body)))
        self.write([], rejected=bad)
        return new

    def _transaction(self, conn: psycopg.Connection, messages: Sequence[Message], statuses: Sequence[Status],
                     rejected: Sequence[tuple[str, str, bytes]]) -> int:
        t0 = time.perf_counter()
        unique: dict[Key, Message] = {}
        for m in messages:
            unique.setdefault(m.key, m)
        keys = sorted(unique)
        with conn.transaction():
            new_keys: list[Key] = []
            if keys:
                cols = list(zip(*[(g, s, q, unique[(g, s, q)].kind, unique[(g, s, q)].topic,
                                   unique[(g, s, q)].data_ts) for g, s, q in keys], strict=True))
                cur = conn.execute(
                    "INSERT INTO messages (gateway, stream, seq, kind, topic, data_ts)"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],"
                    " %s::timestamptz[]) ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING RETURNING gateway, stream, seq",
                    [list(c) for c in cols])
                new_keys = sorted((g, s, q) for g, s, q in cur.fetchall())
            fresh = [unique[k] for k in new_keys]
            self._copy(conn, fresh)
            if fresh:
                self._streams(conn, fresh)
            self._statuses(conn, statuses)
            if rejected:
                conn.cursor().executemany("INSERT INTO rejected (topic, reason, body) VALUES (%s, %s, %s)",
                                          list(rejected))
        commit_s = time.perf_counter() - t0
        s = self.stats
        s.commit_s += commit_s
        s.messages += len(fresh)
        s.duplicates += len(messages) - len(fresh)
        s.readings += sum(len(m.readings) for m in fresh)
        s.rejected += len(rejected)
        if self.keep_lags and len(s.lag_ms) < self.keep_lags:
            now = self.now()
            s.lag_ms.extend((now - m.data_ts.timestamp()) * 1000.0 for m in fresh if m.data_ts is not None)
        return len(fresh)

    @staticmethod
    def _copy(conn: psycopg.Connection, fresh: list[Message]) -> None:
        for table, columns in _COPY.items():
            rows = [r for m in fresh for r in getattr(m, table)]
            if not rows:
                continue
            with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(  # type: ignore[arg-type]
                    sql.Identifier(table), sql.SQL(columns))) as cp:
                for r in rows:
                    cp.write_row(r)

    def _streams(self, conn: psycopg.Connection, fresh: list[Message]) -> None:
        by_stream: dict[tuple[str, str], list[Message]] = {}
        for m in fresh:  # fresh is sorted by key
            by_stream.setdefault(m.key[:2], []).append(m)
        names = sorted(by_stream)
        gws, sts = [g for g, _ in names], [s for _, s in names]
        conn.execute("INSERT INTO streams (gateway, stream, min_seq, max_seq) SELECT g, s, -1, -1"
                     " FROM unnest(%s::text[], %s::text[]) AS t(g, s) ORDER BY 1, 2 ON CONFLICT DO NOTHING",
                     [gws, sts])
        spans = {(g, s): (lo, hi) for g, s, lo, hi in conn.execute(
            "SELECT st.gateway, st.stream, st.min_seq, st.max_seq FROM streams st"
            " JOIN unnest(%s::text[], %s::text[]) AS t(g, s) ON st.gateway = t.g AND st.stream = t.s"
            " ORDER BY 1, 2 FOR UPDATE OF st", [gws, sts])}
        old_gaps: dict[tuple[str, str], list[tuple[int, int, datetime]]] = {}
        for g, s, a, b, at in conn.execute(
                "SELECT gp.gateway, gp.stream, gp.first_seq, gp.last_seq, gp.detected_at FROM gaps gp"
                " JOIN unnest(%s::text[], %s::text[]) AS t(g, s) ON gp.gateway = t.g AND gp.stream = t.s"
                " ORDER BY 1, 2, 3", [gws, sts]):
            old_gaps.setdefault((g, s), []).append((a, b, at))
        now = datetime.now(UTC)
        updates, gap_rows, changed = [], [], []
        for name in names:
            msgs = by_stream[name]
            lo, hi = spans[name]
            before = old_gaps.get(name, [])
            span, after = gapmath.update(None if hi < 0 else (lo, hi), [(a, b) for a, b, _ in before],
                                         [m.key[2] for m in msgs])
            if after != [(a, b) for a, b, _ in before]:
                changed.append(name)
                self.stats.gaps_opened += sum(1 for r in after if not any(a <= r[0] <= b for a, b, _ in before))
                self.stats.gaps_closed += sum(1 for a, b, _ in before if not any(a <= r[0] <= b for r in after))
                for a, b in after:  # a range left of an older one keeps when it was first seen
                    at = next((t for x, y, t in before if x <= a and b <= y), now)
                    gap_rows.append((name[0], name[1], a, b, at))
            data_ts = max((m.data_ts for m in msgs if m.data_ts is not None), default=None)
            updates.append((name[0], name[1], span[0], span[1], len(msgs), data_ts))
        if changed:
            conn.execute("DELETE FROM gaps gp USING unnest(%s::text[], %s::text[]) AS t(g, s)"
                         " WHERE gp.gateway = t.g AND gp.stream = t.s",
                         [[g for g, _ in changed], [s for _, s in changed]])
            if gap_rows:
                conn.cursor().executemany("INSERT INTO gaps (gateway, stream, first_seq, last_seq, detected_at)"
                                          " VALUES (%s, %s, %s, %s, %s)", gap_rows)
        conn.cursor().executemany(
            "UPDATE streams SET min_seq = %s, max_seq = %s, messages = messages + %s,"
            " last_data_ts = greatest(last_data_ts, %s), last_received = now()"
            " WHERE gateway = %s AND stream = %s",
            [(lo, hi, n, ts, g, s) for g, s, lo, hi, n, ts in updates])

    @staticmethod
    def _statuses(conn: psycopg.Connection, statuses: Sequence[Status]) -> None:
        latest: dict[tuple[str, str], Status] = {}
        for st in statuses:
            latest[(st.kind, st.gateway)] = st  # delivery order: the last one wins within a batch
        for (kind, gateway), st in sorted(latest.items()):
            if kind == "health":
                conn.execute("INSERT INTO gateway_health (gateway, body) VALUES (%s, %s)"
                             " ON CONFLICT (gateway) DO UPDATE SET body = excluded.body, received_at = now()",
                             [gateway, psycopg.types.json.Jsonb(st.body)])
                continue
            ts = st.body.get("ts")
            when = datetime.fromtimestamp(ts / 1000, UTC) if isinstance(ts, int) else None
            # "ts" is when the connection opened: a last will from an older connection (delivered late,
            # e.g. by another node) never overwrites a newer "online"
            conn.execute("INSERT INTO gateway_status (gateway, state, ts) VALUES (%s, %s, %s)"
                         " ON CONFLICT (gateway) DO UPDATE SET state = excluded.state, ts = excluded.ts,"
                         " received_at = now() WHERE gateway_status.ts IS NULL OR excluded.ts IS NULL"
                         " OR gateway_status.ts <= excluded.ts",
                         [gateway, str(st.body.get("state")), when])
