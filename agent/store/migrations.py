"""Schema migrations for the outbox database: an ordered list of functions, one per version.

The applied version is stored in ``schema_migrations``. Append new migrations at the end; never edit
one that has shipped. Each runs inside the caller's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def _m1_initial(db: sqlite_utils.Database) -> None:
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
    db["outbox"].create_index(["priority", "rowid"], index_name="outbox_priority_rowid")
    db["sequence"].create({"gateway": str, "last_seq": int}, pk="gateway")
    db["drops"].create({"priority": str, "count": int}, pk="priority")


def _m2_readings(db: sqlite_utils.Database) -> None:
    # readings in each row (telemetry; 0 for other messages), counted when committed so the uplink's
    # throughput figures never parse a stored payload. Rows stored before this version count 0.
    db.execute("ALTER TABLE outbox ADD COLUMN readings INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: tuple[Migration, ...] = (_m1_initial, _m2_readings)


def current_version(db: sqlite_utils.Database) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite_utils.Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply pending migrations in order (caller holds a write transaction). Returns the new version.

    Raises RuntimeError when the database is newer than this code (a downgrade would lose data).
    """
    if "schema_migrations" not in db.table_names():
        db["schema_migrations"].create({"version": int, "applied_ms": int}, pk="version")
    version = current_version(db)
    if version > len(migrations):
        raise RuntimeError(f"outbox schema version {version} is newer than this agent ({len(migrations)})")
    for number, fn in enumerate(migrations[version:], start=version + 1):
        fn(db)
        db["schema_migrations"].insert({"version": number, "applied_ms": int(time.time() * 1000)})
    return len(migrations)
