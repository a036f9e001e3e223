"""Messages held in the outbox until the wall clock is synchronised (a Pi without RTC boots in 1970,
or at fake-hwclock's last saved time, until NTP answers).

A message committed while the clock is not synchronised is stored with its *clock stamp*: the boot it
was taken in (the kernel's boot id) and the offset ``wall - monotonic`` in ms at the time. Every
timestamp ``ts`` in it is then also a monotonic time, ``ts - offset``, which no clock step changes.
The uplink does not publish such a row. At the first synchronisation of the same boot the rows are
*repaired*: each gateway-clock timestamp becomes ``ts - offset + offset_synced`` (the monotonic time
plus the offset of the synchronised clock), ``clock_unsynced`` is cleared from the readings and the
body says ``"clock": "repaired"``. Rows of an earlier boot that never synchronised cannot be placed
(the monotonic clock restarted): they are released as they are, with ``clock_unsynced`` on every
reading and ``"clock": "estimated"`` on the body. A held row was never published, so rewriting it
gives no ``seq`` a second body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import orjson

from agent.model import Quality

if TYPE_CHECKING:
    from agent.store.outbox import Outbox

_UNSYNCED = int(Quality.CLOCK_UNSYNCED)
_CHUNK = 200  # rows rewritten per transaction
_BEFORE_BOOT_MS = 60_000  # slack below the boot's start for a gateway-clock timestamp
_AFTER_COMMIT_MS = 86_400_000  # slack above the commit (a window's end lies after its readings)
_TIME_KEYS = ("ts", "start", "end")  # top-level timestamps of event, aggregate and energy bodies


class ClockHold(NamedTuple):
    """Hold a message until ``boot``'s clock is synchronised; ``offset_ms`` = wall - monotonic."""

    boot: str
    offset_ms: int


def _ours(ts: object, lo: int, hi: int) -> bool:
    """A gateway-clock timestamp of this row (within [lo, hi])? A device's own timestamps (a replayed
    file, a node's clock) are left alone."""
    return isinstance(ts, int) and not isinstance(ts, bool) and lo <= ts <= hi


def repair_body(body: dict, *, offset_ms: int, synced_offset_ms: int, created_ms: int) -> dict:
    """The body of a row held with ``offset_ms``, its timestamps placed with the synchronised offset."""
    delta = synced_offset_ms - offset_ms
    lo, hi = offset_ms - _BEFORE_BOOT_MS, created_ms + _AFTER_COMMIT_MS  # from the boot to after the commit
    for reading in body.get("readings") or ():
        if isinstance(reading, dict) and _ours(reading.get("ts"), lo, hi):
            reading["ts"] += delta
            reading["q"] = int(reading.get("q", 0)) & ~_UNSYNCED
    for key in _TIME_KEYS:
        if _ours(body.get(key), lo, hi):
            body[key] += delta
    body["clock"] = "repaired"
    return body


def estimate_body(body: dict) -> dict:
    """The body of a row from a boot that never synchronised: flagged, timestamps as taken."""
    for reading in body.get("readings") or ():
        if isinstance(reading, dict):
            reading["q"] = int(reading.get("q", 0)) | _UNSYNCED
    body["clock"] = "estimated"
    return body


def held_by_boot(outbox: Outbox) -> dict[str, int]:
    """Rows waiting for a clock, per boot id."""
    return {boot: int(n) for boot, n in outbox.db.execute(
        "SELECT hold_boot, count(*) FROM outbox WHERE hold_boot IS NOT NULL GROUP BY hold_boot")}


def release(outbox: Outbox, boot: str, *, synced_offset_ms: int | None, max_rows: int | None = None) -> int:
    """Rewrite and release the rows held for ``boot``, oldest first, at most ``max_rows`` (None: all):
    repaired with ``synced_offset_ms``, or (None) flagged as estimated. A chunk per transaction;
    returns the rows released (fewer than ``max_rows``: none is left)."""
    done = 0
    while max_rows is None or done < max_rows:
        limit = _CHUNK if max_rows is None else min(_CHUNK, max_rows - done)
        rows = outbox.db.execute(
            "SELECT rowid, payload, hold_offset_ms, created_ms FROM outbox WHERE hold_boot = ?"
            " ORDER BY rowid LIMIT ?", [boot, limit]).fetchall()
        if not rows:
            return done
        updates = []
        for rowid, payload, offset, created in rows:
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError:
                updates.append((bytes(payload), rowid))  # not ours to judge: released unchanged
                continue
            if synced_offset_ms is None:
                body = estimate_body(body)
            else:
                body = repair_body(body, offset_ms=int(offset), synced_offset_ms=synced_offset_ms,
                                   created_ms=int(created))
            updates.append((orjson.dumps(body), rowid))
        with outbox.db.atomic():
            outbox.db.conn.executemany(
                "UPDATE outbox SET payload = ?, hold_boot = NULL, hold_offset_ms = NULL WHERE rowid = ?", updates)
        outbox.released(rows[0][0])
        done += len(rows)
    return done


def hold_columns(hold: object) -> tuple[str | None, int | None]:
    """A message's clock stamp as its row's (hold_boot, hold_offset_ms) columns; (None, None): not held.
    Raises TypeError/ValueError/IndexError when it is not a (boot, offset) pair."""
    if hold is None:
        return None, None
    return str(hold[0]), int(hold[1])  # type: ignore[index]


def unheld_clause(*, held: bool, hold_columns_present: bool) -> str:
    """The WHERE clause part that leaves held rows out (nothing when ``held`` or an older schema)."""
    return "" if held or not hold_columns_present else " AND hold_boot IS NULL"


class ReleasedMark:
    """The lowest rowid released from a clock hold since the uplink last asked (it looks back for them)."""

    def __init__(self) -> None:
        self._lowest: int | None = None

    def note(self, rowid: int) -> None:
        self._lowest = rowid if self._lowest is None else min(self._lowest, rowid)

    def take(self) -> int | None:
        lowest, self._lowest = self._lowest, None
        return lowest
