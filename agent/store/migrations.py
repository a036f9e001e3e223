"""Schema migrations for the outbox database: an ordered list of functions, one per version.

The applied version is stored in ``schema_migrations``. Append new migrations at the end; never edit
one that has shipped. Each runs inside the caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .db import Db

Migration = Callable[[Db], None]


def _m1_initial(db: Db) -> None:
    # AUTOINCREMENT: rowids are never reused, so the uplink's "after rowid" cursor stays valid even
    # when the table has been emptied.
    db.execute(
        "CREATE TABLE outbox ("
        " rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
        " seq INTEGER NOT NULL,"
        " topic TEXT NOT NULL,"
        " payload BLOB NOT NULL,"
        " priority INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL)"
    )
    db.execute('CREATE INDEX "outbox_priority_rowid" ON "outbox" ("priority", "rowid")')
    db.execute('CREATE TABLE "sequence" ("gateway" TEXT PRIMARY KEY, "last_seq" INTEGER)')
    db.execute('CREATE TABLE "drops" ("priority" TEXT PRIMARY KEY, "count" INTEGER)')


def _m2_readings(db: Db) -> None:
    # readings in each row (telemetry; 0 for other messages), counted when committed so the uplink's
    # throughput figures never parse a stored payload. Rows stored before this version count 0.
    db.execute("ALTER TABLE outbox ADD COLUMN readings INTEGER NOT NULL DEFAULT 0")


def _m3_clock_hold(db: Db) -> None:
    # a row committed before the wall clock was synchronised: its boot id and wall - monotonic offset
    # (agent.store.clockhold); NULL for every row that may be published
    db.execute("ALTER TABLE outbox ADD COLUMN hold_boot TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN hold_offset_ms INTEGER")
    db.execute('CREATE INDEX "outbox_held" ON "outbox" ("hold_boot", "rowid") WHERE hold_boot IS NOT NULL')


MIGRATIONS: tuple[Migration, ...] = (_m1_initial, _m2_readings, _m3_clock_hold)


def current_version(db: Db) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: Db, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply pending migrations in order (caller holds a write transaction). Returns the new version.

    Raises RuntimeError when the database is newer than this code (a downgrade would lose data).
    """
    if "schema_migrations" not in db.table_names():
        db.execute('CREATE TABLE "schema_migrations" ("version" INTEGER PRIMARY KEY, "applied_ms" INTEGER)')
    version = current_version(db)
    if version > len(migrations):
        raise RuntimeError(f"outbox schema version {version} is newer than this agent ({len(migrations)})")
    for number, fn in enumerate(migrations[version:], start=version + 1):
        fn(db)
        db.execute("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)",
                   [number, int(time.time() * 1000)])
    return len(migrations)
