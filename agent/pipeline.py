"""Pipeline: pollers submit batches; every ``commit_interval`` the pipeline processes them and
commits raw telemetry, aggregates and events to the outbox in one transaction, then wakes the uplink.

Nothing leaves the gateway before it is committed. Processing only adds quality bits and derived
messages; it never drops a reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config.schema import AgentConfig
from .driver import Clock
from .model import Batch, Quality
from .series import LatestValues, SeriesTable
from .store.outbox import Outbox, OutboxError, Pending, Priority
from .timesync import clock_synchronized
from .uplink.payload import chunk_bodies, reading_rows
from .uplink.topics import Topics

log = logging.getLogger("edge_agent.pipeline")


@dataclass
class PipelineStats:
    readings_in: int = 0
    messages_committed: int = 0
    commits: int = 0
    last_commit_ms: int = 0
    commit_errors: int = 0


class Pipeline:
    def __init__(self, *, config: AgentConfig, series: SeriesTable, outbox: Outbox, topics: Topics,
                 latest: LatestValues, processor=None, on_committed: Callable[[], None] | None = None,
                 clock: Clock | None = None):
        self.config = config
        self.series = series
        self.outbox = outbox
        self.topics = topics
        self.latest = latest
        self.processor = processor
        self.on_committed = on_committed or (lambda: None)
        self.clock = clock or Clock()
        self.stats = PipelineStats()
        self._pending: list[tuple[str, Batch]] = []
        self._extra: list[Pending] = []
        self._per_message = config.mqtt.readings_per_message
        self._publish_mode = {d.name: str(getattr(d, "publish", "raw")) for d in config.devices}
        self._metric_names = [s.metric for s in series]
        self._units = [s.unit for s in series]
        self._last_flush = 0.0
        self.heartbeat = time.monotonic()  # last time a cycle completed (watchdog reads it)

    # -- inputs -------------------------------------------------------------------------------
    def submit(self, device: str, batch: Batch) -> None:
        """Called by a poller with driver-local metric indexes."""
        base = self.series.base(device)
        if base:
            batch = Batch(batch.series + np.int32(base), batch.ts, batch.value, batch.quality)
        self._pending.append((device, batch))
        self.stats.readings_in += len(batch)

    def submit_message(self, pending: Pending) -> None:
        """A message from another part of the agent (command result, audit, event)."""
        self._extra.append(pending)

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        interval = self.config.store.commit_interval
        while True:
            await asyncio.sleep(interval)
            self.cycle()

    def cycle(self) -> int:
        """Process and commit everything pending. Returns the number of messages committed."""
        now_ms = self.clock.now_ms()
        messages: list[Pending] = []
        pending, self._pending = self._pending, []
        extra, self._extra = self._extra, []
        if pending:
            messages.extend(self._process(pending, now_ms))
        if self.processor is not None and time.monotonic() - self._last_flush >= 1.0:
            self._last_flush = time.monotonic()
            messages.extend(self._derived(self.processor.flush(now_ms)))
        messages.extend(extra)
        if messages:
            try:
                self.outbox.append(messages)
            except OutboxError as e:
                self.stats.commit_errors += 1
                if e.index is not None:
                    # one malformed message (a bug upstream): drop it, keep the rest for the next cycle
                    log.error("dropping a message that cannot be stored: %s", e)
                    del messages[e.index]
                else:  # the disk may be momentarily full or locked: keep everything
                    log.error("commit failed, %d messages kept for retry: %s", len(messages), e)
                self._extra[:0] = messages
                return 0
            self.stats.messages_committed += len(messages)
            self.stats.commits += 1
            self.stats.last_commit_ms = now_ms
            self.on_committed()
        self.heartbeat = time.monotonic()
        return len(messages)

    def _process(self, pending: list[tuple[str, Batch]], now_ms: int) -> list[Pending]:
        batch = Batch.concat([b for _, b in pending])
        if not batch.quality.flags.writeable:
            batch = Batch(batch.series, batch.ts, batch.value, batch.quality.copy())
        if not clock_synchronized(require_kernel_sync=self.config.gateway.require_time_sync):
            batch.quality |= np.uint32(Quality.CLOCK_UNSYNCED)
        derived: list[Pending] = []
        if self.processor is not None:
            derived = self._derived(self.processor.process(batch, now_ms))
        self.latest.update(batch.series, batch.ts, batch.value, batch.quality)
        out: list[Pending] = []
        offset = 0
        for device, b in pending:
            n = len(b)
            if self._publish_mode.get(device, "raw") in ("raw", "both"):
                sl = slice(offset, offset + n)
                local = batch.series[sl]
                rows = reading_rows(batch.ts[sl], local, batch.value[sl], batch.quality[sl], self._metric_names, self._units)
                topic = self.topics.telemetry(device)
                out.extend(Pending(Priority.RAW, topic, body) for body in chunk_bodies(device, rows, self._per_message))
            offset += n
        return out + derived

    def _derived(self, result) -> list[Pending]:
        out: list[Pending] = []
        for device, body in getattr(result, "aggregates", ()):
            if self._publish_mode.get(device, "raw") != "raw":  # publish = "raw": no window aggregates
                out.append(Pending(Priority.AGG, self.topics.agg(device), body))
        for device, body in getattr(result, "energy", ()):
            out.append(Pending(Priority.AGG, self.topics.agg(device), body))
        for body in getattr(result, "events", ()):
            out.append(Pending(Priority.EVENT, self.topics.event, body))
        return out
