"""One poller per device: monotonic timing with jitter, per-device timeout and backoff.

Devices that share a line and a poll interval share a :class:`Cadence`: one grid of slots and one
jitter draw per slot, so their polls fall due together and go out on the line together (a Modbus TCP
line sends the polls waiting for it in one write); devices on other lines or intervals draw their own.

A device's failure is logged once and its recovery once; repeats are counted. When a device has
had no good poll for ``stale_after`` seconds, the poller emits one explicit gap marker per metric
(value NaN, ``Quality.STALE``) instead of repeating old values.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import ReportsEvents
from .contract.lines import POLLS_DUE_TOGETHER
from .driver import Clock, Driver
from .errors import BusUnavailable, DeviceError, DeviceTimeout, ProtocolError
from .health_parts import DeviceReport
from .model import Batch, Quality, Sample

if TYPE_CHECKING:
    from .contract import DeviceConfig

log = logging.getLogger("edge_agent.scheduler")

Sink = Callable[[str, Batch], None]


@dataclass
class DeviceHealth:
    up: bool = False
    opened: bool = False
    polls_ok: int = 0
    polls_failed: int = 0
    consecutive_failures: int = 0
    readings: int = 0
    last_ok_ms: int = 0
    last_error: str = ""
    last_latency_s: float = 0.0
    latency_ewma_s: float = 0.0
    stale: bool = False
    diagnostics: dict = field(default_factory=dict)
    # the driver's diagnostics, built when a report is made (not after every poll: health reads them
    # every few seconds, a busy line polls many times a second)
    diagnostics_fn: Callable[[], dict] | None = None

    def report(self) -> DeviceReport:
        if self.diagnostics_fn is not None and self.polls_ok:
            self.diagnostics = self.diagnostics_fn()
        return DeviceReport(
            up=self.up, stale=self.stale, polls_ok=self.polls_ok, polls_failed=self.polls_failed,
            consecutive_failures=self.consecutive_failures, readings=self.readings, last_ok_ms=self.last_ok_ms,
            last_error=self.last_error, latency_ms=round(self.last_latency_s * 1000, 2),
            latency_avg_ms=round(self.latency_ewma_s * 1000, 2), diagnostics=self.diagnostics,
        )


def backoff_delay(interval: float, failures: int, cap: float) -> float:
    """Wait before the next attempt after ``failures`` consecutive failures (1 = first failure)."""
    if failures <= 1:
        return interval
    return min(cap, interval * (2 ** min(failures - 1, 30)))


class Cadence:
    """When polls fall due: slots on a grid of the interval (from the first poller's start), each at its
    slot plus a random jitter drawn once per slot and shared by every poller of the cadence."""

    _KEEP = 8  # slots whose draw is kept for pollers that come to a slot late (after an overrun)

    def __init__(self, interval: float, jitter: float, rng: random.Random | None = None):
        self.interval = interval
        self.spread = jitter * interval
        self.rng = rng or random.Random()
        self.origin: float | None = None
        self._draws: dict[int, float] = {}
        self.members = 0  # pollers sharing it
        self._slot: float | None = None  # the slot whose polls are starting, and how many have
        self._started = 0

    def start(self, now: float) -> None:
        if self.origin is None:
            self.origin = now

    def starting(self, slot: float) -> bool:
        """A poller starts its poll of ``slot``: whether others of the cadence have yet to start theirs
        (they fall due in the same turn of the event loop: the line may send them together)."""
        if self.members < 2:
            return False
        if slot != self._slot:
            self._slot, self._started = slot, 0
        self._started += 1
        return self._started < self.members

    def next_due(self, slot: float, done: float) -> tuple[float, float]:
        """(next slot, when it is due) after a good poll in ``slot`` that ended at ``done``: the first slot of
        the grid at least an interval after ``slot`` (a slot of a device back from backoff is off the grid),
        or, when the poll overran it, the first slot after ``done`` (the missed ones are skipped)."""
        origin, step = self.origin if self.origin is not None else slot, self.interval
        k = math.ceil((slot + step - origin) / step - 1e-9)
        if origin + k * step < done:
            k = math.floor((done - origin) / step) + 1
        draw = self._draws.get(k)
        if draw is None:
            draw = self._draws[k] = self.rng.uniform(0, self.spread)
            for old in [j for j in self._draws if j < k - self._KEEP]:
                del self._draws[old]
        return origin + k * step, origin + k * step + draw


def cadences(devices: Iterable[DeviceConfig], rng: random.Random | None = None) -> dict[str, Cadence]:
    """A cadence per device: one shared by the devices on the same line with the same interval and
    jitter, one of its own for every other device (lines and gateways stay spread apart)."""
    rng = rng or random.Random()
    shared: dict[tuple[str, float, float], Cadence] = {}
    out: dict[str, Cadence] = {}
    for dev in devices:
        lines = dev.lines_used()
        if len(lines) == 1:
            key = (lines[0], dev.poll_interval, dev.jitter)
            if key not in shared:
                shared[key] = Cadence(dev.poll_interval, dev.jitter, rng)
            out[dev.name] = shared[key]
        else:
            out[dev.name] = Cadence(dev.poll_interval, dev.jitter, rng)
    return out


class PollsInFlight:
    """The polls of the pollers feeding one pipeline: how many are under way and when each poller polls
    next, so the pipeline can tell when no more readings are coming before its batching delay ends (then
    it commits at once: the delay would only add a wake-up and latency). ``on_idle`` is called whenever
    the last poll under way has ended."""

    def __init__(self, clock: Clock, on_idle: Callable[[], None] | None = None):
        self.clock = clock
        self.on_idle = on_idle
        self.under_way = 0
        self._due: dict[int, float] = {}  # id(poller) -> when it polls next (its clock's monotonic time)

    def started(self) -> None:
        self.under_way += 1

    def ended(self, poller: object, next_due: float) -> None:
        self.under_way -= 1
        self._due[id(poller)] = next_due
        if not self.under_way and self.on_idle is not None:
            self.on_idle()

    def gone(self, poller: object) -> None:
        self._due.pop(id(poller), None)

    def quiet_for(self, seconds: float) -> bool:
        """No poll is under way and none falls due within ``seconds``."""
        if self.under_way:
            return False
        limit = self.clock.monotonic() + seconds
        return not any(due < limit for due in self._due.values())


class Poller:
    def __init__(self, config: DeviceConfig, driver: Driver, sink: Sink, *, clock: Clock | None = None,
                 rng: random.Random | None = None, events: Callable[[dict[str, Any]], None] | None = None,
                 cadence: Cadence | None = None, flight: PollsInFlight | None = None):
        self.config = config
        self.driver = driver
        self.sink = sink
        self.events = events  # where a ReportsEvents driver's events go (the event topic)
        self._reports_events = events is not None and isinstance(driver, ReportsEvents)  # (a slow check: once)
        self._checked_series: np.ndarray | None = None  # a read-only series column already checked
        self.clock = clock or Clock()
        # shared with the devices on its line and interval (see cadences()); else its own (a Random is
        # 2.5 KB: made only when needed)
        self.cadence = cadence or Cadence(config.poll_interval, config.jitter, rng)
        self.cadence.members += 1
        self._together = False  # others of the cadence start their polls of this slot after this one
        self.flight = flight  # shared by the pollers feeding one pipeline (see PollsInFlight)
        self.health = DeviceHealth()
        self._metric_index: dict[str, int] | None = None  # built for a driver that returns samples
        self._n_metrics = len(driver.metrics())
        self._stale_after = config.stale_after or 3 * config.poll_interval
        self._stopping = False
        # the poll deadline: one timer re-armed when it falls due during a later poll (polls come more
        # often than their timeout), rather than a timer set and cancelled per poll; cancelled after a poll
        # when it would fall due before the next one (see _disarm_idle)
        self._deadline = 0.0  # loop time the poll under way must end by (0: none under way)
        self._polling: asyncio.Task | None = None  # the task the poll under way runs in
        self._watch: asyncio.TimerHandle | None = None
        self._watch_loop: asyncio.AbstractEventLoop | None = None  # the loop the timer is armed on
        self._expired = False  # the deadline cancelled the poll under way

    @property
    def name(self) -> str:
        return self.config.name

    def stop(self) -> None:
        """Ask the loop to end after the current poll. Cancelling the task alone is not enough: a
        driver can swallow the cancellation (``asyncio.wait_for`` on 3.11 does when the reply is
        already there), and the loop must still end."""
        self._stopping = True

    async def run(self) -> None:
        cfg = self.config
        # polls are due on the cadence's grid of the interval, each at its slot plus a fresh random jitter
        # (never added up: the rate stays the configured one, and devices started together stay in step, so
        # their batches share the pipeline's commits)
        slot = next_due = self.clock.monotonic()
        self.cadence.start(slot)
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                delay = max(0.0, next_due - self.clock.monotonic())
                if delay:
                    stale_in = self._stale_in()
                    if stale_in is not None and stale_in < delay:
                        await asyncio.sleep(stale_in)
                        self._check_stale()
                        continue
                    await asyncio.sleep(delay)
                    if self._stopping:
                        break
                started = self.clock.monotonic()
                self._together = self.cadence.starting(slot)
                if flight := self.flight:
                    flight.started()
                try:
                    ok = await self.poll_once()
                except BaseException:
                    if flight:
                        flight.ended(self, math.inf)
                    raise
                if ok:  # (an overrun skips the slots missed while it ran)
                    slot, next_due = self.cadence.next_due(slot, self.clock.monotonic())
                else:  # (after a good poll the device cannot be stale: the check before sleeping suffices)
                    slot = next_due = started + backoff_delay(cfg.poll_interval, self.health.consecutive_failures,
                                                              cfg.backoff_max)
                    self._check_stale()
                self._disarm_idle(loop, next_due)
                if flight:
                    flight.ended(self, next_due)
        finally:
            if self.flight is not None:
                self.flight.gone(self)
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            await self._close()

    def _disarm_idle(self, loop: asyncio.AbstractEventLoop, next_due: float) -> None:
        """Cancel the deadline timer when it would fall due before the next poll starts: no poll would be
        under way, it would only wake the loop (a cancelled timer does not). A timer due later is kept for
        the polls to come (polls more often than their timeout share it); the next poll arms one if none."""
        watch = self._watch
        if watch is None:
            return
        if self._watch_loop is not loop or watch.when() < loop.time() + (next_due - self.clock.monotonic()):
            watch.cancel()
            self._watch = None

    def _expire(self) -> None:
        self._watch = None
        if not self._deadline or self._polling is None:  # no poll under way: the next one arms it
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # a later poll's deadline
            self._watch = loop.call_at(self._deadline, self._expire)
            return
        self._expired = True
        self._polling.cancel()

    async def _read(self) -> Sequence[Sample] | Batch:
        """The driver's read (opening it first if needed), cancelled at the poll's deadline (TimeoutError),
        as ``asyncio.timeout`` would."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._deadline, self._polling, self._expired = loop.time() + self.config.timeout, task, False
        if self._watch is None or self._watch_loop is not loop:  # (a timer of an ended loop never fires)
            self._watch, self._watch_loop = loop.call_at(self._deadline, self._expire), loop
        together = POLLS_DUE_TOGETHER.set(True) if self._together else None
        try:
            if not self.health.opened:
                await self.driver.open()
                self.health.opened = True
            return await self.driver.read()
        except asyncio.CancelledError as e:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:
                    raise TimeoutError from e
            raise
        finally:
            if together is not None:
                POLLS_DUE_TOGETHER.reset(together)
            if self._expired:  # expired, and the read ended otherwise (a driver swallowed the cancellation)
                task.uncancel()
            self._deadline, self._polling, self._expired = 0.0, None, False

    async def poll_once(self) -> bool:
        """Open if needed, read once, hand the batch to the sink. True on success."""
        h = self.health
        t0 = self.clock.monotonic()
        try:
            batch = self._to_batch(await self._read())
        except TimeoutError:
            self._failed(DeviceTimeout(f"no answer within {self.config.timeout:g} s"))
            return False
        except DeviceError as e:
            if isinstance(e, BusUnavailable):
                await self._close()
            self._failed(e)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a driver bug must not take down the other devices
            if h.up or h.consecutive_failures == 0:
                log.exception("device %s: driver error", self.name)
            self._failed(e)
            await self._close()
            return False
        latency = self.clock.monotonic() - t0
        self._succeeded(latency, len(batch))
        if len(batch):
            self.sink(self.name, batch)
        if self._reports_events:
            for body in self.driver.take_events():
                self.events({**body, "device": self.name})
        return True

    @property
    def metric_index(self) -> dict[str, int]:
        """metric name -> local index (only drivers returning samples need it: built on first use)."""
        if self._metric_index is None:
            self._metric_index = {m.name: i for i, m in enumerate(self.driver.metrics())}
        return self._metric_index

    def _to_batch(self, result: Sequence[Sample] | Batch) -> Batch:
        now_ms = self.clock.now_ms()
        if isinstance(result, Batch):
            series = result.series
            if len(result) and series is not self._checked_series:
                if series.min() < 0 or series.max() >= self._n_metrics:
                    raise DeviceError(f"driver returned metric index outside 0..{self._n_metrics - 1}")
                if not series.flags.writeable:  # the same column every poll: checked once
                    self._checked_series = series
            return result
        try:
            return Batch.from_samples(result, self.metric_index, now_ms)
        except KeyError as e:
            raise ProtocolError(f"driver returned a metric it did not declare: {e.args[0]}") from None

    def _succeeded(self, latency: float, n: int) -> None:
        h = self.health
        if not h.up:
            if h.consecutive_failures:
                log.info("device %s: recovered after %d failed polls", self.name, h.consecutive_failures)
            else:
                log.info("device %s: up", self.name)
        h.up, h.stale = True, False
        h.consecutive_failures = 0
        h.polls_ok += 1
        h.readings += n
        h.last_ok_ms = self.clock.now_ms()
        h.last_latency_s = latency
        h.latency_ewma_s = latency if h.polls_ok == 1 else 0.8 * h.latency_ewma_s + 0.2 * latency
        if h.diagnostics_fn is None and callable(diag := getattr(self.driver, "diagnostics", None)):
            h.diagnostics_fn = diag

    def _failed(self, err: BaseException) -> None:
        h = self.health
        h.polls_failed += 1
        h.consecutive_failures += 1
        msg = f"{type(err).__name__}: {err}"
        if h.up or h.consecutive_failures == 1:
            log.warning("device %s: down: %s (further failures counted, not logged)", self.name, msg)
        h.up = False
        h.last_error = msg

    def _stale_in(self) -> float | None:
        """Seconds until the device turns stale, or None if it cannot (already stale / never up)."""
        h = self.health
        if h.stale or not self._n_metrics or not h.last_ok_ms:
            return None
        return max(0.0, self._stale_after - (self.clock.now_ms() - h.last_ok_ms) / 1000)

    def _check_stale(self) -> None:
        h = self.health
        stale_in = self._stale_in()
        if stale_in is not None and stale_in <= 0:
            since = (self.clock.now_ms() - h.last_ok_ms) / 1000
            h.stale = True
            log.warning("device %s: stale (no good poll for %.0f s)", self.name, since)
            n = self._n_metrics
            marker = Batch(np.arange(n, dtype=np.int32), np.full(n, self.clock.now_ms(), np.int64),
                           np.full(n, np.nan), np.full(n, int(Quality.STALE), np.uint32))
            self.sink(self.name, marker)

    async def _close(self) -> None:
        if self.health.opened:
            self.health.opened = False
            try:
                await self.driver.close()
            except Exception:  # noqa: BLE001
                log.debug("device %s: error while closing", self.name, exc_info=True)
