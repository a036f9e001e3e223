"""The agent's outbox as the pipeline and the uplink use it: the same calls as :class:`Outbox`, plus
what a gateway in the field needs when the database itself fails.

- **Damage found while running.** SQLite reports a damaged page only when a statement touches it, and a
  database with a bad interior b-tree page opens fine. Whenever a read or write says SQLITE_CORRUPT (or
  NOTADB/FORMAT), the file is set aside as ``<name>.corrupt-<UTC time>`` (kept for the technician), a new
  outbox continues above every ``seq`` ever issued (seqmark.py), an ``outbox_quarantined`` event is
  published and collection goes on. Listeners (the uplink) hear of the swap at once, because rowids
  start again in the new file.
- **No room to open it.** Started on a full disk, the outbox cannot be opened (SQLite must write its
  WAL index). The agent starts anyway: appends fail as they would on a full disk, so the pipeline holds
  messages in memory within its documented bound and counts what it evicts; the open is retried with
  every commit attempt, and rows already on disk are delivered once it succeeds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agent.store.outbox import (
    Outbox,
    OutboxCorrupt,
    OutboxError,
    OutboxLocked,
    OutboxRow,
    OutboxStats,
    Pending,
    Priority,
)
from agent.store.quarantine import Quarantined, open_outbox, set_aside

log = logging.getLogger("edge_agent.outbox")
FULL_BELOW_BYTES = 256 * 1024  # a filesystem with less free space than this counts as full


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def disk_full(path: Path) -> bool:
    """The filesystem holding ``path`` has (almost) no space left for this user."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW_BYTES


class ResilientOutbox:
    def __init__(self, path: Path, *, max_bytes: int, gateway: str,
                 on_quarantined: Callable[[Quarantined], None] | None = None, now_ms: Callable[[], int] = _wall_ms):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.gateway = gateway
        self.on_quarantined = on_quarantined
        self._now_ms = now_ms
        self._listeners: list[Callable[[], None]] = []
        self._inner: Outbox | None = None
        self._drops: dict[Priority, int] = {}  # counted while no outbox was open
        self.unavailable: str | None = None  # why the outbox is not open (e.g. the disk is full)
        self.quarantines = 0
        self.startup_quarantine: Quarantined | None = None
        try:
            self._inner, self.startup_quarantine = open_outbox(self.path, max_bytes=max_bytes, gateway=gateway)
            if self.startup_quarantine is not None:  # the owner publishes it once its pipeline exists
                self._log_quarantine(self.startup_quarantine)
        except OutboxLocked:
            raise
        except OutboxError as e:
            if not disk_full(self.path):
                raise
            self.unavailable = str(e)
            log.error("outbox %s cannot be opened, the disk is full (%s): starting anyway, holding messages in "
                      "memory and retrying; free space under %s", self.path, e, self.path.parent)

    def on_replaced(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a new outbox file takes the place of the old one (rowids restart)."""
        self._listeners.append(listener)

    # -------------------------------------------------------------------------------- internals
    def _outbox(self) -> Outbox:
        """The open outbox, opening it now if the start could not; OutboxError while it still cannot."""
        if self._inner is not None:
            return self._inner
        try:
            self._inner, quarantined = open_outbox(self.path, max_bytes=self.max_bytes, gateway=self.gateway)
        except OutboxError as e:
            self.unavailable = str(e)
            raise OutboxError(f"outbox {self.path} is still not open: {e}") from None
        log.info("outbox %s opened: %d messages stored before are sent now", self.path, self._inner.unsent)
        self.unavailable = None
        self._inner.count_drops(self._drops)
        self._drops = {}
        if quarantined is not None:
            self._quarantined(quarantined)
        self._replaced()
        return self._inner

    def _heal(self, e: OutboxCorrupt) -> None:
        """Set the damaged outbox aside and continue in a new one. OutboxError when it cannot be."""
        old = self._inner
        assert old is not None
        unsent = old.unsent
        reason = str(e.__cause__ or e)
        old.close()
        self._inner = None
        try:
            moved_to = set_aside(self.path)
        except OSError as err:
            problem = f"outbox {self.path} is corrupt ({reason}) and cannot be set aside: {err.strerror}"
            if problem != self.unavailable:  # said once, not on every retry
                log.error("%s; holding messages in memory", problem)
            self.unavailable = problem
            raise OutboxError(problem) from None
        new = self._outbox()
        self._quarantined(Quarantined(path=self.path, moved_to=moved_to, reason=reason, resumed_seq=new.last_seq,
                                      unsent=unsent))

    def _quarantined(self, q: Quarantined) -> None:
        self._log_quarantine(q)
        if self.on_quarantined is not None:
            self.on_quarantined(q)

    def _log_quarantine(self, q: Quarantined) -> None:
        self.quarantines += 1
        log.error("outbox %s was corrupt (%s): moved to %s for inspection (%s); a new outbox continues after seq %d",
                  q.path, q.reason, q.moved_to,
                  "its unsent messages stay in it" if q.unsent is None else f"{q.unsent} unsent messages stay in it",
                  q.resumed_seq)

    def _replaced(self) -> None:
        for listener in self._listeners:
            listener()

    # ------------------------------------------------------------------------- the Outbox API
    def append(self, items: Sequence[Pending]) -> list[int]:
        ob = self._outbox()
        try:
            return ob.append(items)
        except OutboxCorrupt as e:
            self._heal(e)
            return self._outbox().append(items)

    def peek(self, limit: int, after_rowid: int = 0, *, held: bool = False) -> list[OutboxRow]:
        if self._inner is None:
            return []
        try:
            return self._inner.peek(limit, after_rowid, held=held)
        except OutboxCorrupt as e:
            self._heal_quietly(e)
            return []

    def _heal_quietly(self, e: OutboxCorrupt) -> None:
        try:
            self._heal(e)
        except OutboxError:
            pass  # logged; the next append retries the open

    def stats(self) -> OutboxStats:
        if self._inner is not None:
            try:
                return self._inner.stats()
            except OutboxCorrupt as e:
                self._heal_quietly(e)
        if self._inner is None:
            drops = {p.name.lower(): self._drops.get(p, 0) for p in Priority}
            return OutboxStats(depth=0, bytes=0, oldest_created_ms=None, drops=drops, last_seq=0)
        return self._inner.stats()

    def delete(self, rowids: Iterable[int] = ()) -> int:
        if self._inner is None:
            return 0
        try:
            return self._inner.delete(rowids)
        except OutboxCorrupt as e:
            self._heal_quietly(e)
            return 0

    def mark_acked(self, rowids: Iterable[int]) -> None:
        if self._inner is not None:
            self._inner.mark_acked(rowids)

    def count_drops(self, dropped: dict[Priority, int]) -> None:
        if self._inner is not None:
            self._inner.count_drops(dropped)
            return
        for priority, n in dropped.items():
            self._drops[Priority(priority)] = self._drops.get(Priority(priority), 0) + n

    @property
    def acked_pending_delete(self) -> int:
        return self._inner.acked_pending_delete if self._inner is not None else 0

    @property
    def acked_waiting(self) -> tuple[int, int]:
        return self._inner.acked_waiting if self._inner is not None else (0, 0)

    @property
    def last_seq(self) -> int:
        return self._inner.last_seq if self._inner is not None else 0

    @property
    def unsent(self) -> int:
        return self._inner.unsent if self._inner is not None else 0

    @property
    def stream(self) -> str | None:
        return self._inner.stream if self._inner is not None else None

    # ----------------------------------------------- messages held for the clock (store.clockhold)
    @property
    def db(self) -> Any:
        """The open outbox's database; OutboxError while none is open."""
        return self._outbox().db

    def released(self, rowid: int) -> None:
        if self._inner is not None:
            self._inner.released(rowid)

    def take_released(self) -> int | None:
        """The lowest rowid released from a clock hold since the last call (rowids of the open file)."""
        return self._inner.take_released() if self._inner is not None else None

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
