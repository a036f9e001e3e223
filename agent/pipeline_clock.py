"""The pipeline's view of the wall clock on a gateway that may have no RTC.

Each cycle the pipeline asks :meth:`ClockKeeper.begin` for the clock state: whether the wall clock is
synchronised, and whether it was stepped since the last cycle. Messages the pipeline makes while it
is not synchronised (telemetry, aggregates, energy, anomaly events) are committed with a clock stamp
(boot id, ``wall - monotonic``) and held in the outbox (agent.store.clockhold); at the first sync of
the same boot they are repaired and released. Rows of an earlier boot that never synchronised are
released flagged ``estimated`` when the agent starts. A step (> 1 s) is logged, counted, moves the
readings of the same cycle that were stamped before it onto the new clock, and closes the open
aggregation windows (the pipeline asks the processor to split them).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterable

import numpy as np

from .health_parts import PipelineHealth
from .store import clockhold
from .store.clockhold import ClockHold
from .store.outbox import Outbox, OutboxError
from .store.resilient import ResilientOutbox
from .timesync import ClockStep, ClockWatch, boot_id

log = logging.getLogger("edge_agent.clock")
RELEASE_PER_CYCLE = 400  # held rows rewritten per pipeline cycle (~0.3 s here), so the loop never stalls


class ClockKeeper:
    def __init__(self, *, outbox: object, stats: PipelineHealth, synced: Callable[[int], bool],
                 boot: str | None = None):
        self.outbox = outbox if isinstance(outbox, Outbox | ResilientOutbox) else None  # a dry run holds nothing
        self.stats = stats
        self._synced = synced
        # an unknown boot id: a per-process one, so rows of an earlier run are never placed wrongly
        self.boot = boot if boot is not None else (boot_id() or f"unknown-{uuid.uuid4()}")
        self.watch = ClockWatch()
        self.synced = True
        self._waiting = False  # rows of this boot wait in the outbox for a sync
        self._started = False
        self._counted_ms = -1000  # monotonic ms of the last count of waiting rows
        self._repairing = 0  # rows repaired since the sync (logged when done)
        self._estimating: set[str] = set()  # earlier boots whose rows are being released
        self._more_others = False  # rows of earlier boots left for the next cycle

    # -- each cycle -------------------------------------------------------------------------
    def begin(self, now_ms: int, mono_ms: int) -> ClockStep | None:
        """Observe the clock at the start of a cycle; returns a step since the last cycle."""
        if not self._started:
            self._release_other_boots()
        step = self.watch.observe(now_ms, mono_ms)
        if step is not None:
            self.stats.clock_steps += 1
            self.stats.clock_last_step_s = round(step.size_ms / 1000, 3)
            log.warning("wall clock stepped by %+.3f s: aggregation windows are split at the step",
                        step.size_ms / 1000)
        was, self.synced = self.synced, self._synced(now_ms)
        if was and not self.synced:
            log.warning("wall clock not synchronised: readings are stored and held until it is, then their "
                        "timestamps are repaired from the monotonic clock")
        return step

    @property
    def hold(self) -> ClockHold | None:
        """The stamp for messages committed in this cycle (None when synchronised)."""
        if self.synced or self.watch.offset_ms is None:
            return None
        return ClockHold(self.boot, self.watch.offset_ms)

    def committed(self, holds: Iterable[ClockHold | None]) -> None:
        """The clock stamps of messages just committed."""
        if any(h is not None for h in holds):
            self._waiting = True

    def release_if_synced(self) -> int:
        """After the commits of a synchronised cycle: repair and release what this boot holds."""
        if not (self.synced and self._waiting and self.outbox is not None and self.watch.offset_ms is not None):
            return 0
        try:
            n = clockhold.release(self.outbox, self.boot, synced_offset_ms=self.watch.offset_ms,
                                  max_rows=RELEASE_PER_CYCLE)
        except (OutboxError, OSError, sqlite3.Error) as e:
            log.error("cannot release the messages held for clock sync (%s): retried next cycle", e)
            return 0
        self.stats.clock_repaired += n
        self._repairing += n
        if n < RELEASE_PER_CYCLE:  # none left
            self._waiting = False
            self.stats.clock_waiting = 0
            if self._repairing:
                log.info("wall clock synchronised: timestamps of %d stored messages repaired from the monotonic "
                         "clock", self._repairing)
            self._repairing = 0
        return n

    @property
    def busy(self) -> bool:
        """Held rows are being released a chunk per cycle: the pipeline should cycle again soon."""
        return self._more_others or (self.synced and self._waiting)

    def count_waiting(self, mono_ms: int) -> None:
        """Refresh ``clock_waiting`` for health (a count over the held rows: at most once a second)."""
        if self.outbox is not None and self._waiting and mono_ms - self._counted_ms >= 1000:
            self._counted_ms = mono_ms
            try:
                self.stats.clock_waiting = clockhold.held_by_boot(self.outbox).get(self.boot, 0)
            except (OutboxError, OSError, sqlite3.Error):
                pass  # counted again next second; release_if_synced says what is wrong

    # -- at start ---------------------------------------------------------------------------
    def _release_other_boots(self) -> None:
        """Release held rows of earlier boots as estimated, RELEASE_PER_CYCLE per call; sets
        ``_started`` once none is left."""
        if self.outbox is None:
            self._started = True
            return
        budget = RELEASE_PER_CYCLE
        try:
            for boot, n in clockhold.held_by_boot(self.outbox).items():
                if boot == self.boot:
                    self._waiting = True  # an earlier run of this boot: repaired at this boot's sync
                    continue
                if boot not in self._estimating:
                    self._estimating.add(boot)
                    log.warning("%d stored messages of an earlier boot (%s) were taken before its clock was "
                                "synchronised and cannot be placed: published with their timestamps as taken, "
                                "flagged clock_unsynced (clock: estimated)", n, boot)
                released = clockhold.release(self.outbox, boot, synced_offset_ms=None, max_rows=budget)
                self.stats.clock_estimated += released
                budget -= released
                if budget <= 0:
                    self._more_others = True  # more next cycle
                    return
        except (OutboxError, OSError, sqlite3.Error) as e:
            log.error("cannot release messages held for an earlier boot's clock (%s): retried next cycle", e)
            return
        self._started = True
        self._more_others = False


def move_to_new_clock(ts: np.ndarray, step: ClockStep, mono_ms: int) -> int:
    """Readings of this cycle stamped before ``step``: their timestamps fit the old offset better than
    the new one. Move them onto the new clock (in place); returns how many were moved."""
    before = np.abs(ts - step.before_ms - mono_ms)
    after = np.abs(ts - step.after_ms - mono_ms)
    moved = before < after
    ts[moved] += np.int64(step.size_ms)
    return int(moved.sum())
