"""The outbox pump: which rows the uplink publishes next, and what it does with refused topics.

Rows go out in rowid order from a cursor, at most ``max_inflight`` unacknowledged at once; PUBACKs
refill the window once a quarter of it is free, so a backlog is read from the outbox in batches and
every row is read once (a drain is linear in the backlog). A topic the broker refuses (MQTT 5
negative PUBACK) is set aside (see :mod:`agent.uplink.refusals`): its rows stay in the outbox and are
passed over, so they never fill the in-flight window, and every other topic keeps flowing in order. When a refused topic's retry is due, or when it is accepted again, a *rescan* looks
at the rows below the cursor: it publishes the topic's oldest kept row as a probe, or, once the topic
is accepted, all its kept rows oldest first, before anything newer. A rescan stops as soon as it has
nothing left to look for, so rows set aside are not read again and again. Rows held in the outbox
until the clock is synchronised (agent.store.clockhold) are passed over too; when they are released a
rescan sends them, oldest first, before anything newer.

A mixin of :class:`agent.uplink.mqtt.Uplink`, which owns the connection; loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from agent.store.outbox import Outbox, OutboxRow
from agent.uplink.connection import one_wake
from agent.uplink.refusals import Refusals

if TYPE_CHECKING:
    from agent.config.schema import MqttConfig

log = logging.getLogger("edge_agent.uplink")

_RETRY_MIN, _RETRY_MAX = 0.02, 1.0  # backoff after a publish() error
_BATCH = 500  # rows read from the outbox at once
_REFILL_PART = 4  # acknowledgements refill the window once a 1/_REFILL_PART of it is free


@dataclass(slots=True)
class Counts:
    """The uplink's counters since start (reported by :meth:`Uplink.stats`)."""

    published: int = 0
    acked: int = 0
    readings_acked: int = 0
    connects: int = 0
    connect_failures: int = 0
    publish_errors: int = 0
    nacks: int = 0
    commands: int = 0


class OutboxPump:
    # provided by the Uplink
    cfg: MqttConfig
    outbox: Outbox
    clock: Any
    last_error: str | None
    _loop: asyncio.AbstractEventLoop | None
    _client: mqtt.Client | None
    _stopping: bool
    _counts: Counts

    def _init_pump(self) -> None:
        self._inflight: dict[int, tuple[int, int, str]] = {}  # mid -> (rowid, readings in it, topic)
        self._inflight_rows: set[int] = set()
        self._cursor = 0  # last rowid handed to paho or passed over: every row up to it was looked at
        self._more = True  # rows may wait past the cursor (False once a scan found the end, until wake())
        self._refusals = Refusals()
        self._rescan: int | None = None  # position of a rescan below the cursor
        self._draining: set[str] = set()  # topics accepted again whose kept rows the rescan sends
        self._released = False  # rows released from a clock hold below the cursor: the rescan sends them
        self._due_handle: asyncio.TimerHandle | None = None
        self._pump_scheduled = False
        self._retry_handle: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_MIN
        self._refill_at = max(1, min(self.cfg.max_inflight // _REFILL_PART, _BATCH))

    def _pump(self) -> None:
        self._pump_scheduled = False
        client = self._client
        if client is None or self._stopping or self._retry_handle is not None:
            return
        room = self.cfg.max_inflight - len(self._inflight)
        if (released := self.outbox.take_released()) is not None and self._rescan_from(released - 1):
            self._released = True  # repaired after a clock sync: older than what was sent meanwhile
        with one_wake(client):  # the rows published now wake the network thread once
            if room > 0 and self._rescan is not None:
                room = self._scan(client, room, rescan=True)
            if room > 0 and self._rescan is None:
                self._scan(client, room, rescan=False)

    def _refill(self, *, now: bool = False) -> None:
        """After acknowledgements: refill the window once it has room for a batch of rows (one read of
        the outbox per ``_refill_at`` rows, not one per PUBACK), or ``now``. Until then more than
        ``max_inflight - _refill_at`` rows are in flight, and their acknowledgements call this again.
        When everything committed is in flight already, acknowledgements read nothing: the next commit
        wakes the pump."""
        if now or (self.cfg.max_inflight - len(self._inflight) >= self._refill_at
                   and (self._more or self._rescan is not None)):
            self._pump()  # (not when the last scan found the end of the outbox and nothing came since)

    def _scan(self, client: mqtt.Client, room: int, *, rescan: bool) -> int:
        """Publish rows in rowid order from the cursor (or the rescan position) while the window has
        room; rows of refused topics are passed over. Returns the room left (0 after a publish error)."""
        batch = min(room, _BATCH)  # as many rows as the window takes; more once rows are passed over
        while room > 0:
            if rescan and not (self._draining or self._released or self._refusals.wanted):
                self._rescan = None  # nothing left to look for below the cursor
                return room
            after = self._rescan if rescan else self._cursor
            assert after is not None
            rows = self.outbox.peek(batch, after_rowid=after)
            batch = _BATCH
            if rescan:
                rows = [r for r in rows if r.rowid <= self._cursor]
            if not rows:
                if rescan:  # caught up with the cursor: every kept row of a draining topic was sent
                    self._rescan = None
                    self._draining.clear()
                    self._released = False
                else:
                    self._more = False
                return room
            for row in rows:
                if not self._wanted(row, rescan):
                    pass  # in flight, acknowledged, set aside, or (below the cursor) not what we look for
                elif not self._send(client, row):
                    return 0
                else:
                    room -= 1
                if rescan:
                    self._rescan = row.rowid
                else:
                    self._cursor = row.rowid
                if room == 0:
                    break
        return room

    def _wanted(self, row: OutboxRow, rescan: bool) -> bool:
        """Publish this row now? A rescan sends only probes and the kept rows of draining topics."""
        if row.rowid in self._inflight_rows:  # acknowledged rows: the outbox's peek leaves them out
            return False
        if row.topic in self._refusals:
            return self._refusals.take_probe(row.topic, row.rowid)
        return not rescan or self._released or row.topic in self._draining

    def _send(self, client: mqtt.Client, row: OutboxRow) -> bool:
        info = client.publish(row.topic, row.payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._refusals.release_probe(row.topic, row.rowid)
            self._counts.publish_errors += 1
            self.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
            self._retry_later()
            return False
        self._inflight[info.mid] = (row.rowid, row.readings, row.topic)
        self._inflight_rows.add(row.rowid)
        self._counts.published += 1
        self._retry_delay = _RETRY_MIN
        return True

    def _forget_inflight(self) -> None:
        """The connection changed: nothing is in flight; look at every row again from the oldest."""
        self._inflight.clear()
        self._inflight_rows.clear()
        self._cursor = 0
        self._more = True
        self._rescan = None
        self._draining.clear()
        self._released = False
        self._refusals.reconnected()

    # ------------------------------------------------------------------------- refused topics
    def _refused(self, topic: str, rowid: int, reason: str) -> None:
        """A negative PUBACK: the row stays in the outbox and its topic is set aside."""
        if self._refusals.refuse(topic, rowid, reason, self.clock.monotonic()):
            log.warning("broker refuses messages on %s (%s): they are kept and retried with a growing "
                        "backoff; other topics keep flowing", topic, reason)
        self._schedule_due()

    def _accepted(self, topic: str, rowid: int) -> None:
        """A PUBACK: if the topic was refused, send the rows it kept, oldest first."""
        if (refusal := self._refusals.accept(topic)) is not None:
            log.info("broker accepts messages on %s again: sending the ones kept", topic)
            if self._rescan_from(min(refusal.oldest, rowid) - 1):
                self._draining.add(topic)

    def _rescan_from(self, after_rowid: int) -> bool:
        """Look again at the rows after ``after_rowid`` up to the cursor; False if none are behind it."""
        if after_rowid >= self._cursor:
            return False
        self._rescan = after_rowid if self._rescan is None else min(self._rescan, after_rowid)
        return True

    def _schedule_due(self) -> None:
        """Wake up for the next refused topic's probe."""
        due = self._refusals.next_due()
        if self._due_handle is not None:
            self._due_handle.cancel()
            self._due_handle = None
        if due is not None and self._loop is not None:
            self._due_handle = self._loop.call_later(max(0.0, due - self.clock.monotonic()), self._on_due)

    def _on_due(self) -> None:
        self._due_handle = None
        for oldest in self._refusals.make_due(self.clock.monotonic()):
            self._rescan_from(oldest - 1)
        self._schedule_due()
        self._pump()

    # ------------------------------------------------------------------------ publish errors
    def _retry_later(self) -> None:
        if self._retry_handle is None and self._loop is not None:
            self._retry_handle = self._loop.call_later(self._retry_delay, self._retry)
            self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)

    def _retry(self) -> None:
        self._retry_handle = None
        self._pump()
