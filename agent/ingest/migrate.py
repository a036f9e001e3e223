"""Schema migrations (agent/ingest/sql/NNN_*.sql, applied in order, once) and daily partitions."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import psycopg

log = logging.getLogger("edge_agent.ingest")

PARTITIONED = ("readings", "aggregates", "energy", "events")
_LOCK = 0x6564_6765  # advisory lock id: one migrating / partitioning session at a time


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped, in order."""
    out = []
    for f in resources.files("agent.ingest").joinpath("sql").iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text()))
    return sorted(out)


def migrate(conn: psycopg.Connection) -> int:
    """Apply the migrations this database lacks; returns the schema version. Safe to run from several
    consumers at once (an advisory lock serialises them)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        conn.execute("CREATE TABLE IF NOT EXISTS ingest_schema (version integer PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r[0] for r in conn.execute("SELECT version FROM ingest_schema")}
        for version, name, sql in migrations():
            if version not in done:
                log.info("applying ingest schema migration %s", name)
                conn.execute(sql)  # type: ignore[arg-type] - trusted files shipped with the package
                conn.execute("INSERT INTO ingest_schema (version, name) VALUES (%s, %s)", [version, name])
        return max(done | {v for v, _, _ in migrations()})


def ensure_partitions(conn: psycopg.Connection, *, today: date | None = None, back: int = 1,
                      ahead: int = 3) -> list[str]:
    """Create the daily partitions from ``today - back`` to ``today + ahead`` that are missing.
    Returns the names created. A day whose rows already sit in the default partition is left there."""
    today = today or datetime.now(UTC).date()
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        existing = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)", [list(PARTITIONED)])}
        for n in range(-back, ahead + 1):
            day = today + timedelta(days=n)
            for table in PARTITIONED:
                name = f"{table}_{day:%Y%m%d}"
                if name in existing:
                    continue
                try:
                    with conn.transaction():  # a savepoint: one refused day does not undo the others
                        conn.execute(
                            f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM"  # type: ignore[arg-type]
                            f" ('{day:%Y-%m-%d} 00:00:00+00') TO ('{day + timedelta(days=1):%Y-%m-%d} 00:00:00+00')")
                    created.append(name)
                except psycopg.errors.CheckViolation as e:
                    log.warning("partition %s not created (rows for that day are in the default partition): %s",
                                name, e)
    return created
