"""Pipeline: pollers submit batches; the pipeline processes them and commits raw telemetry,
aggregates and events to the outbox in one transaction, then wakes the uplink. It sleeps until work
arrives, then waits ``commit_interval`` more so what arrives meanwhile shares the commit, or less once
``commit_readings`` readings wait (what a cycle holds at once, its memory, stays bounded whatever the
poll rate), or once the polls under way have ended and none falls due before the wait would end (nothing
more would join the commit: a gateway polling every second commits as its polls end, without a wake-up
for the delay). The first readings after start are committed at once (a technician sees the first data
sooner). With nothing to do it wakes only to close aggregation windows (once a second, or up to 0.25 s
later, waiting for a commit to ride on; readings arriving just before then can hold the check for their
batching delay too) and to show it is alive.

Nothing leaves the gateway before it is committed. Processing only adds quality bits and derived
messages; it never drops a reading.

When a commit fails (disk full, database locked) the messages are held in memory, in order, within a
bound derived from the outbox cap (see :mod:`agent.store.held`); what the bound evicts is counted as
drops. Commits are retried with a growing delay, held messages first, so seqs keep reading order. The
failure is logged once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .driver import Clock
from .health_parts import PipelineHealth
from .model import Batch, Quality
from .pipeline_clock import ClockKeeper, move_to_new_clock
from .series import LatestValues, SeriesTable
from .store.held import Held, HeldMessages, hold_bytes_for
from .store.outbox import Outbox, OutboxError, Pending, Priority
from .timesync import ClockStep, clock_synchronized
from .uplink.payload import TelemetryEncoder
from .uplink.topics import Topics

if TYPE_CHECKING:
    from .config.schema import AgentConfig
    from .processing.processor import Processor, ProcessResult

log = logging.getLogger("edge_agent.pipeline")
HOLD_CHUNK_BYTES = 256 * 1024  # held messages committed per transaction when catching up
RETRY_MAX_S = 5.0  # longest wait between commit attempts while commits fail
IDLE_WAKE_S = 2.0  # longest sleep without work (the watchdog reads the heartbeat; limit >= 5 s)
FLUSH_S = 1.0  # how often aggregation windows are checked for closing
# a cycle that runs anyway (the polls' commit) flushes when the flush is due within this much, so
# devices polled every second with jitter never make the loop wake again for a flush of its own
FLUSH_EARLY_S = 0.25
# and a wake-up of its own for a flush waits this much past due for such a cycle: the polls' commit comes as
# their polls end, at the slot's jitter (5 % of the interval) from the last one, either side of the flush
FLUSH_LATE_S = 0.25


class Pipeline:
    def __init__(self, *, config: AgentConfig, series: SeriesTable, outbox: Outbox, topics: Topics,
                 latest: LatestValues, processor: Processor | None = None, on_committed: Callable[[], None] | None = None,
                 clock: Clock | None = None, hold_bytes: int | None = None, boot: str | None = None):
        self.config = config
        self.series = series
        self.outbox = outbox
        self.topics = topics
        self.latest = latest
        self.processor = processor
        self.on_committed = on_committed or (lambda: None)
        self.clock = clock or Clock()
        self.stats = PipelineHealth()
        self._pending: list[tuple[str, Batch]] = []
        self._pending_readings = 0  # readings in _pending
        self._gathering: asyncio.Future | None = None  # the batching delay of run(), ended early by commit_readings
        self._shifted: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # device -> (driver's column, + base)
        self._extra: list[Pending] = []
        self._per_message = config.mqtt.readings_per_message
        self._publish_mode = {d.name: str(d.publish) for d in config.devices}
        self._encoder = TelemetryEncoder([s.metric for s in series], [s.unit for s in series])
        self._last_flush = 0.0
        self.held = HeldMessages(hold_bytes or hold_bytes_for(config.store.max_bytes))
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self._fault: _Fault | None = None
        self.heartbeat = time.monotonic()  # last time a cycle completed (watchdog reads it)
        self._work = False  # something was submitted since the last cycle began
        self._started = False  # a cycle has committed readings: later ones (and until then, messages
        # without readings) wait the batching delay
        self._waiter: asyncio.Future | None = None  # the idle wait of run(), ended by a submission
        # while the idle wait lasts, the first submission arms the batching delay on it (in place of its idle
        # timer) rather than waking run() to arm one: one wake-up of the pipeline per commit, not two
        self._idle_timer: asyncio.TimerHandle | None = None
        self._gather_timer: asyncio.TimerHandle | None = None
        self._commit_now = False  # the idle wait ended for a commit: batching delay over, or not needed
        # whether no readings will come within the given seconds (no poll under way or due: the pollers'
        # PollsInFlight, which calls polls_done when the last poll under way ends); None: always wait
        self.quiet: Callable[[float], bool] | None = None
        require = config.gateway.require_time_sync
        self.time = ClockKeeper(outbox=outbox, stats=self.stats, synced=lambda now_ms: clock_synchronized(
            require_kernel_sync=require, now_s=now_ms / 1000), boot=boot)
        self.taps: list[Callable[[list[Pending]], None]] = []  # see every message of a cycle (the web page's events)
        # called as each cycle begins: the uplink hands over the acknowledgements that arrived since the
        # last one, so the rows they acknowledge are deleted in this cycle's commit (Uplink.ride_acks_on_commits)
        self.before_cycle: Callable[[], None] | None = None

    # -- inputs -------------------------------------------------------------------------------
    def submit(self, device: str, batch: Batch) -> None:
        """Called by a poller with driver-local metric indexes."""
        if base := self.series.base(device):
            batch = Batch(self._global_series(device, base, batch.series), batch.ts, batch.value, batch.quality)
        self._pending.append((device, batch))
        self.stats.readings_in += len(batch)
        self._pending_readings += len(batch)
        self._wake()
        # [store] commit_readings: a cycle's columns, JSON text and rows take ≈ 0.25 KB a reading at once
        # (100 meters x 60 values every 100 ms brought ≈ 12,000 a cycle: 3 MB more RSS; docs/processing.md)
        if (self._pending_readings >= self.config.store.commit_readings and self._gathering is not None
                and not self._gathering.done()):
            self._gathering.set_result(None)

    def _global_series(self, device: str, base: int, local: np.ndarray) -> np.ndarray:
        """``local + base``; a driver that returns the same read-only column every poll gets the same
        read-only result back, computed once."""
        cached = self._shifted.get(device)
        if cached is not None and cached[0] is local:
            return cached[1]
        shifted = local + np.int32(base)
        if not local.flags.writeable:
            shifted.setflags(write=False)
            self._shifted[device] = (local, shifted)
        return shifted

    def submit_message(self, pending: Pending) -> None:
        """A message from another part of the agent (command result, audit, event)."""
        self._extra.append(pending)
        self._wake()

    def _wake(self) -> None:
        self._work = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if (not self._started and self._pending_readings > 0) or self._pending_readings >= self.config.store.commit_readings:
            self._commit_now = True  # the first readings (a technician sees them sooner), or commit_readings
            waiter.set_result(None)
        elif self._gather_timer is None:  # the batching delay, on the idle wait itself
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._gather_timer = waiter.get_loop().call_later(self.config.store.commit_interval, self._gathered, waiter)

    def polls_done(self) -> None:
        """The last poll under way has ended: if no poll falls due before the batching delay ends, nothing
        more will join this commit, so it is made now (sooner, and without a wake-up for the delay)."""
        timer, waiter = self._gather_timer, self._waiter
        if timer is None or waiter is None or waiter.done() or self.quiet is None:
            return
        if self.quiet(timer.when() - waiter.get_loop().time()):
            self._gathered(waiter)

    def _gathered(self, waiter: asyncio.Future) -> None:
        if self._gather_timer is not None:
            self._gather_timer.cancel()
        self._gather_timer = None
        if not waiter.done():
            self._commit_now = True
            waiter.set_result(None)

    @property
    def commit_failing(self) -> bool:
        """The last commit failed and messages are held in memory (e.g. the disk is full)."""
        return self._fault is not None

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        interval = self.config.store.commit_interval
        loop = asyncio.get_running_loop()
        while True:
            if not self._work:  # asleep until a submission (and its batching delay) or the idle timeout: one
                # future and one timer, not a task per wait (asyncio.wait_for's), which an idle gateway paid every cycle
                self._waiter = waiter = loop.create_future()
                self._idle_timer = loop.call_later(self._idle_timeout(), _set_done, waiter)
                try:
                    await waiter
                finally:
                    for timer in (self._idle_timer, self._gather_timer):
                        if timer is not None:
                            timer.cancel()
                    self._idle_timer = self._gather_timer = self._waiter = None
            if self._work:  # the batching delay: later submissions join this commit, up to commit_readings
                first = not self._started and self._pending_readings > 0  # the first readings: at once
                if not (first or self._commit_now) and self._pending_readings < self.config.store.commit_readings:
                    self._gathering = gathering = loop.create_future()
                    timer = loop.call_later(interval, _set_done, gathering)
                    try:
                        await gathering
                    finally:
                        timer.cancel()
                        self._gathering = None
                self._work = False
            self._commit_now = False
            self.cycle()

    def _idle_timeout(self) -> float:
        """How long to sleep when nothing is submitted: until windows may close, a held commit is
        retried or a failed delete is retried, at most IDLE_WAKE_S."""
        now = time.monotonic()
        wake = IDLE_WAKE_S
        if self.processor is not None:
            wake = min(wake, self._last_flush + FLUSH_S + FLUSH_LATE_S - now)
        if len(self.held):
            wake = min(wake, self._retry_at - now)
        if self.outbox.acked_pending_delete or self.time.busy:
            wake = min(wake, self.config.store.commit_interval)
        return max(0.0, wake)

    def cycle(self, *, final: bool = False) -> int:
        """Process and commit everything pending. Returns the number of messages committed.
        ``final`` (at shutdown) tries held messages at once, whatever the retry delay."""
        if self.before_cycle is not None:
            try:
                self.before_cycle()
            except Exception:  # noqa: BLE001 - the commit goes on; the uplink's own error is logged
                log.exception("preparing a pipeline cycle failed")
        now_ms = self.clock.now_ms()
        mono_ms = int(self.clock.monotonic() * 1000)
        step = self.time.begin(now_ms, mono_ms)
        messages: list[Pending] = []
        pending, self._pending = self._pending, []
        self._pending_readings = 0
        extra, self._extra = self._extra, []
        if step is not None and self.processor is not None:  # windows never span a step
            messages.extend(self._derived(self.processor.split(), split=True))
        if pending:
            messages.extend(self._process(pending, now_ms, step, mono_ms))
            self._started = True
        if self.processor is not None and time.monotonic() - self._last_flush >= FLUSH_S - FLUSH_EARLY_S:
            self._last_flush = time.monotonic()
            messages.extend(self._derived(self.processor.flush(now_ms)))
        if (hold := self.time.hold) is not None:  # stored, published once the clock is synchronised
            messages = [m._replace(hold=hold) for m in messages]
            for m in extra:  # answers and audit records go out at once, their time marked
                m.body["clock"] = "unsynced"
        messages.extend(extra)
        for tap in self.taps:
            tap(messages)
        committed = 0
        if messages and not len(self.held):
            committed = self._commit(messages)
        elif messages:
            self._hold(messages)  # behind what is held already: nothing newer is committed first
        if len(self.held) and (final or time.monotonic() >= self._retry_at):
            committed += self._commit_held()
        if self.outbox.acked_pending_delete:
            self.outbox.delete()  # acknowledged rows whose delete failed earlier
        if self.time.release_if_synced():
            self.on_committed()  # wake the uplink: the repaired rows go out before anything newer
        self.time.count_waiting(mono_ms)
        self.stats.held, self.stats.held_bytes = len(self.held), self.held.bytes
        if final and len(self.held):
            log.error("%d messages could not be committed before shutdown and are lost", len(self.held))
        self.heartbeat = time.monotonic()  # a failing commit is not a stuck loop
        return committed

    def _commit(self, messages: list[Pending]) -> int:
        """Commit fresh messages; on failure hold them (dropping a malformed one)."""
        try:
            self.outbox.append(messages)
        except OutboxError as e:
            self.stats.commit_errors += 1
            if e.index is None:
                self._failed(e)
            else:  # one malformed message (a bug upstream): drop it, keep the rest for the next cycle
                log.error("dropping a message that cannot be stored: %s", e)
                del messages[e.index]
            self._hold(messages)
            return 0
        self.time.committed(m.hold for m in messages)
        self._committed(len(messages))
        return len(messages)

    def _commit_held(self) -> int:
        """Commit held messages oldest first, a chunk per transaction, until none is left or one fails."""
        total = 0
        while len(self.held):
            entries: list[Held] = self.held.oldest(HOLD_CHUNK_BYTES)
            try:
                self.outbox.append([e.pending() for e in entries])
            except OutboxError as e:
                self.stats.commit_errors += 1
                if e.index is None:
                    self._failed(e)
                    return total
                log.error("dropping a message that cannot be stored: %s", e)
                self.held.release([entries[e.index]])
                continue
            self.held.release(entries)
            self.time.committed(e.hold for e in entries)
            self._committed(len(entries))
            total += len(entries)
        if self._fault is not None:
            f = self._fault
            log.info("commit recovered after %.1f s: held messages committed, %d dropped while holding",
                     time.monotonic() - f.since, f.dropped)
            self._fault = None
        self._retry_delay = 0.0
        return total

    def _hold(self, messages: list[Pending]) -> None:
        evicted, malformed = self.held.add(messages)
        for problem in malformed:
            log.error("dropping a message that cannot be stored: %s", problem)
        if evicted:
            self.outbox.count_drops(evicted)
            if self._fault is not None:
                if not self._fault.dropped:
                    log.warning("messages held in memory reached %d KiB: dropping the oldest (raw telemetry "
                                "first), counted in buffer drops", self.held.max_bytes // 1024)
                self._fault.dropped += sum(evicted.values())

    def _failed(self, e: OutboxError) -> None:
        if self._fault is None:
            self._fault = _Fault(time.monotonic())
            log.error("commit failed: %s; holding messages in memory (up to %d KiB) and retrying",
                      e, self.held.max_bytes // 1024)
        interval = self.config.store.commit_interval
        self._retry_delay = min(RETRY_MAX_S, max(interval, 2 * self._retry_delay))
        self._retry_at = time.monotonic() + self._retry_delay

    def _committed(self, n: int) -> None:
        self.stats.messages_committed += n
        self.on_committed()

    def _process(self, pending: list[tuple[str, Batch]], now_ms: int, step: ClockStep | None = None,
                 mono_ms: int = 0) -> list[Pending]:
        batch = Batch.concat([b for _, b in pending])
        if not batch.quality.flags.writeable or (step is not None and not batch.ts.flags.writeable):
            batch = Batch(batch.series, batch.ts.copy(), batch.value, batch.quality.copy())
        if step is not None:  # stamped before the step, committed after it: onto the new clock
            move_to_new_clock(batch.ts, step, mono_ms)
        if not self.time.synced:
            batch.quality |= np.uint32(Quality.CLOCK_UNSYNCED)
        derived: list[Pending] = []
        if self.processor is not None:
            derived = self._derived(self.processor.process(batch, now_ms))
        self.latest.update(batch.series, batch.ts, batch.value, batch.quality)
        # one run of readings per device (all its batches of this cycle, in order), so messages fill up
        # to readings_per_message rather than one message per poll
        by_device: dict[str, list[slice]] = {}
        offset = 0
        for device, b in pending:
            n = len(b)
            if self._publish_mode.get(device, "raw") in ("raw", "both"):
                by_device.setdefault(device, []).append(slice(offset, offset + n))
            offset += n
        out: list[Pending] = []
        pieces = self._encoder.pieces(batch.ts, batch.series, batch.value, batch.quality) if by_device else None
        for device, slices in by_device.items():
            topic = self.topics.telemetry(device)
            rows = pieces[slices[0]] if len(slices) == 1 else np.concatenate([pieces[sl] for sl in slices])
            out.extend(Pending(Priority.RAW, topic, body, count)
                       for body, count in self._encoder.split(device, rows, self._per_message))
        return out + derived

    def _derived(self, result: ProcessResult, *, split: bool = False) -> list[Pending]:
        if split:  # windows closed early by a clock step
            for _, body in result.aggregates + result.energy:
                body["split"] = "clock_step"
        out: list[Pending] = []
        for device, body in result.aggregates:
            if self._publish_mode.get(device, "raw") != "raw":  # publish = "raw": no window aggregates
                out.append(Pending(Priority.AGG, self.topics.agg(device), body))
        for device, body in result.energy:
            out.append(Pending(Priority.AGG, self.topics.agg(device), body))
        for body in result.events:
            out.append(Pending(Priority.EVENT, self.topics.event, body))
        return out


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class _Fault:
    since: float  # monotonic time of the first failed commit
    dropped: int = 0
