"""Idempotency: remember each command id and its outcome, persistently, bounded.

Ids live in a small SQLite file in the state directory (``commands.db``) so a replayed command is
recognised across restarts; the oldest ids beyond ``limit`` are forgotten. If the file cannot be
opened (read-only state dir) the store keeps the same bound in memory.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


class IdStore:
    def __init__(self, path: Path | None, *, limit: int):
        self.limit = limit
        self._mem: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None)
                self._db.execute("pragma journal_mode=wal")
                self._db.execute(
                    "create table if not exists seen (id text primary key, ts_ms integer, result blob)"
                )
            except (OSError, sqlite3.Error) as e:
                log.warning("command id store %s unavailable (%s); remembering ids in memory only", path, e)
                self._db = None

    def get(self, cmd_id: str) -> dict[str, Any] | None:
        if self._db is None:
            return self._mem.get(cmd_id)
        row = self._db.execute("select result from seen where id = ?", (cmd_id,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, cmd_id: str, ts_ms: int, result: dict[str, Any]) -> None:
        if self._db is None:
            self._mem[cmd_id] = result
            while len(self._mem) > self.limit:
                self._mem.popitem(last=False)
            return
        self._db.execute("insert or ignore into seen values (?, ?, ?)", (cmd_id, ts_ms, orjson.dumps(result)))
        (n,) = self._db.execute("select count(*) from seen").fetchone()
        if n > self.limit:
            self._db.execute(
                "delete from seen where rowid in (select rowid from seen order by rowid limit ?)", (n - self.limit,)
            )

    def __len__(self) -> int:
        if self._db is None:
            return len(self._mem)
        return int(self._db.execute("select count(*) from seen").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
