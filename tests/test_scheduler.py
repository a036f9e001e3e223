"""Pollers: timing, backoff, failure/recovery logged once, stale gap markers, isolation of bad devices."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from agent.config.schema import DeviceConfig
from agent.errors import DeviceTimeout, ProtocolError
from agent.model import Batch, MetricSpec, Quality, Sample
from agent.scheduler import Poller, backoff_delay
from tests.virtual_time import LoopClock, run_virtual


class ScriptedDevice:
    """A device whose answers follow a script: a value, an exception to raise, or 'hang'."""

    def __init__(self, script):
        self.script = list(script)
        self.opens = 0
        self.closes = 0

    def metrics(self):
        return [MetricSpec("v", "V"), MetricSpec("i", "A")]

    async def open(self):
        self.opens += 1

    async def read(self):
        step = self.script.pop(0) if self.script else 1.0
        if step == "hang":
            await asyncio.sleep(3600)
        if isinstance(step, BaseException):
            raise step
        return [Sample("v", step), Sample("i", step / 10)]

    async def close(self):
        self.closes += 1


def cfg(**kw) -> DeviceConfig:
    base = dict(name="dev", type="scripted", poll_interval=0.02, timeout=0.2, jitter=0.0, backoff_max=0.08)
    base.update(kw)
    return DeviceConfig(**base)


class Collector:
    def __init__(self):
        self.batches: list[Batch] = []

    def __call__(self, device: str, batch: Batch) -> None:
        self.batches.append(batch)

    @property
    def values(self) -> list[float]:
        return [float(v) for b in self.batches for v in b.value]


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(5, n, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


async def test_failure_and_recovery_are_each_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    dev = ScriptedDevice([1.0] + [ProtocolError("bad CRC")] * 5 + [2.0, 3.0])
    sink = Collector()
    poller = Poller(cfg(), dev, sink)
    caplog.set_level(logging.INFO, logger="edge_agent.scheduler")
    for _ in range(8):
        await poller.poll_once()
    downs = [r for r in caplog.records if "down" in r.getMessage()]
    recoveries = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(downs) == 1 and "bad CRC" in downs[0].getMessage()
    assert len(recoveries) == 1 and "5 failed polls" in recoveries[0].getMessage()
    assert poller.health.polls_failed == 5 and poller.health.polls_ok == 3
    assert sink.values == [1.0, 1.0 / 10, 2.0, 2.0 / 10, 3.0, 3.0 / 10]


async def test_a_hanging_device_times_out_and_is_counted() -> None:
    dev = ScriptedDevice(["hang", 5.0])
    poller = Poller(cfg(timeout=0.05), dev, Collector())
    assert await poller.poll_once() is False
    assert "DeviceTimeout" in poller.health.last_error
    assert await poller.poll_once() is True


async def test_a_driver_bug_does_not_escape_and_the_driver_is_reopened() -> None:
    dev = ScriptedDevice([ZeroDivisionError("driver bug"), 1.0])
    poller = Poller(cfg(), dev, Collector())
    assert await poller.poll_once() is False
    assert dev.closes == 1
    assert await poller.poll_once() is True
    assert dev.opens == 2


async def test_undeclared_metric_is_a_failed_poll_not_a_crash() -> None:
    class Liar(ScriptedDevice):
        async def read(self):
            return [Sample("voltage_typo", 1.0)]

    poller = Poller(cfg(), Liar([]), Collector())
    assert await poller.poll_once() is False
    assert "voltage_typo" in poller.health.last_error


def test_stale_device_gets_one_gap_marker_per_metric_not_repeated_values() -> None:
    """On virtual time: the device goes stale, then 25 more poll intervals pass in which a repeated
    marker or value would show, however busy the machine is."""
    dev = ScriptedDevice([7.0] + [DeviceTimeout("silent")] * 1000)
    sink = Collector()

    async def main() -> Poller:
        clock = LoopClock(asyncio.get_running_loop())
        poller = Poller(cfg(poll_interval=0.02, stale_after=0.15, backoff_max=0.04), dev, sink, clock=clock)
        task = asyncio.create_task(poller.run())
        while not poller.health.stale:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return poller

    poller = run_virtual(main())
    good = [v for v in sink.values if not np.isnan(v)]
    assert good == [7.0, 0.7]  # never re-sent
    markers = [b for b in sink.batches if np.all(b.quality & Quality.STALE)]
    assert len(markers) == 1
    assert np.isnan(markers[0].value).all() and sorted(markers[0].series.tolist()) == [0, 1]
    assert poller.health.stale and not poller.health.up
    assert dev.closes == 1  # closed when the poller stopped


def test_one_dead_device_does_not_slow_the_others() -> None:
    """Counted on virtual time (tests/virtual_time.py): half a second of loop time holds the same polls
    on an idle machine and on a loaded one."""
    async def main() -> tuple[Poller, Poller]:
        clock = LoopClock(asyncio.get_running_loop())
        healthy = Poller(cfg(name="ok", poll_interval=0.02), ScriptedDevice([]), Collector(), clock=clock)
        dead = Poller(cfg(name="dead", timeout=0.1), ScriptedDevice(["hang"] * 1000), Collector(), clock=clock)
        tasks = [asyncio.create_task(p.run()) for p in (healthy, dead)]
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return healthy, dead

    healthy, dead = run_virtual(main())
    # the healthy device kept its pace: a poll every 0.02 s from 0 to 0.5 s, as if the dead one were not there
    assert healthy.health.polls_ok >= 25
    assert dead.health.polls_ok == 0 and dead.health.polls_failed >= 1
    # each try of the dead device waits out its timeout: tried far fewer times than its interval would allow
    assert dead.health.polls_failed <= 5


def test_a_stalled_read_skips_the_missed_slots_without_a_burst() -> None:
    """On virtual time: the second poll's read stalls for 3.5 intervals; the slots it overran are
    skipped and the next poll waits for the next slot after it ended, not one at once."""

    async def main() -> list[float]:
        clock = LoopClock(asyncio.get_running_loop())
        t0 = clock.monotonic()
        times: list[float] = []

        class Stalls(ScriptedDevice):
            async def read(self):
                times.append(clock.monotonic() - t0)
                if len(times) == 2:
                    await asyncio.sleep(3.5)
                return await super().read()

        task = asyncio.create_task(Poller(cfg(poll_interval=1.0, timeout=10.0), Stalls([]), Collector(),
                                          clock=clock).run())
        await asyncio.sleep(7.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return times

    times = run_virtual(main())
    assert times == pytest.approx([0.0, 1.0, 5.0, 6.0, 7.0])  # the stall ended at 4.5: slots 2-4 skipped


def test_jitter_is_drawn_per_poll_not_added_up() -> None:
    """On virtual time: the k-th poll falls in [k, k + jitter] intervals after the start, so the rate
    stays the configured one and two devices started together stay in step (their batches share a
    commit); with jitter added up they would drift apart and poll slower than configured."""
    import random

    async def main() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop)
        t0 = clock.monotonic()
        times: dict[str, list[float]] = {"a": [], "b": []}

        class Timed(ScriptedDevice):
            def __init__(self, name: str):
                super().__init__([])
                self.name = name

            async def read(self):
                times[self.name].append(clock.monotonic() - t0)
                return await super().read()

        tasks = [asyncio.create_task(Poller(cfg(name=n, poll_interval=1.0, jitter=0.2), Timed(n), Collector(),
                                            clock=clock, rng=random.Random(i)).run())
                 for i, n in enumerate(times)]
        await asyncio.sleep(60.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return times

    times = run_virtual(main())
    for got in times.values():
        assert len(got) == 61
        assert all(k <= t <= k + 0.2 + 1e-6 for k, t in enumerate(got)), got
    assert max(abs(a - b) for a, b in zip(times["a"], times["b"], strict=True)) <= 0.2 + 1e-6


async def run_until_first_failure(poller: Poller) -> float:
    """Run ``poller`` (on virtual time) until its first failed poll; returns the loop time it failed at."""
    task = asyncio.create_task(poller.run())
    while not poller.health.polls_failed:
        await asyncio.sleep(0.001)
    failed_at = asyncio.get_running_loop().time()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return failed_at


def test_a_poll_deadline_is_its_own_with_one_timer_for_many_polls() -> None:
    """On virtual time: polls every 0.1 s with a 1 s timeout, then one that hangs. The hanging poll fails
    with DeviceTimeout one timeout after it started (not at an earlier poll's deadline), and the pollers'
    deadlines took about one timer per timeout, not one per poll (timers other than sleeps, counted at the
    loop)."""
    starts: list[float] = []

    class Timed(ScriptedDevice):
        async def read(self):
            starts.append(asyncio.get_running_loop().time())
            return await super().read()

    async def main() -> tuple[Poller, float, int]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop)
        armed = [0]
        call_at = loop.call_at

        def counting(when, callback, *args, **kw):
            armed[0] += callback is not asyncio.futures._set_result_unless_cancelled  # (a sleep's)
            return call_at(when, callback, *args, **kw)

        loop.call_at = counting  # type: ignore[method-assign]
        poller = Poller(cfg(poll_interval=0.1, timeout=1.0, backoff_max=60.0), Timed([1.0] * 40 + ["hang"]),
                        Collector(), clock=clock)
        failed_at = await run_until_first_failure(poller)
        return poller, failed_at, armed[0]

    poller, failed_at, armed = run_virtual(main())
    assert poller.health.polls_failed == 1 and "DeviceTimeout" in poller.health.last_error
    assert 1.0 <= failed_at - starts[40] < 1.01
    assert armed <= 10, armed  # 41 polls in 5 s: a deadline timer per second, not one per poll


def test_the_deadline_timer_never_falls_due_between_polls() -> None:
    """On virtual time, at the shipped timing (a poll every second with 5 % jitter, a 2 s timeout), each
    read taking 10 ms: over a minute the poll deadline's timer never falls due while no poll is under way
    (each such firing woke an idle agent for nothing), and a poll that then hangs still fails one timeout
    after it started."""
    import random

    starts: list[float] = []

    class Timed(ScriptedDevice):
        async def read(self):
            starts.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.01)
            return await super().read()

    async def main() -> tuple[Poller, float, int, int]:
        loop = asyncio.get_running_loop()
        poller = Poller(cfg(poll_interval=1.0, timeout=2.0, jitter=0.05, backoff_max=60.0),
                        Timed([1.0] * 60 + ["hang"]), Collector(), clock=LoopClock(loop), rng=random.Random(7))
        fired, idle = [0], [0]
        expire = poller._expire

        def counting() -> None:
            fired[0] += 1
            idle[0] += poller._polling is None
            expire()

        poller._expire = counting  # type: ignore[method-assign]
        failed_at = await run_until_first_failure(poller)
        return poller, failed_at, fired[0], idle[0]

    poller, failed_at, fired, idle = run_virtual(main())
    assert poller.health.polls_ok == 60
    assert idle == 0, f"the deadline timer fell due {idle} times with no poll under way ({fired} in all)"
    assert poller.health.polls_failed == 1 and "DeviceTimeout" in poller.health.last_error
    assert 2.0 <= failed_at - starts[60] < 2.01


async def test_a_poll_cancelled_from_outside_is_cancelled_not_timed_out() -> None:
    dev = ScriptedDevice(["hang", 2.0])
    poller = Poller(cfg(timeout=30.0), dev, Collector())
    task = asyncio.create_task(poller.poll_once())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert poller.health.polls_failed == 0
    assert await poller.poll_once() is True


def test_a_poller_polled_again_in_a_new_event_loop_still_times_out() -> None:
    """``edge-agent read`` and the doctor poll once per event loop: a deadline timer left on an ended
    loop must not leave the next loop's poll without a deadline."""
    poller = Poller(cfg(timeout=0.5), ScriptedDevice([1.0, "hang"]), Collector())
    assert run_virtual(poller.poll_once()) is True
    assert run_virtual(poller.poll_once()) is False
    assert "DeviceTimeout" in poller.health.last_error


def test_a_cancel_from_outside_while_the_deadline_is_handled_stays_a_cancel() -> None:
    """The deadline cancels the read; while the driver cleans up, the task is cancelled from outside
    (shutdown): the poll ends cancelled, not as a device timeout."""

    class SlowCleanup(ScriptedDevice):
        async def read(self):
            try:
                await asyncio.sleep(3600)
            finally:
                await asyncio.sleep(0.1)

    poller = Poller(cfg(timeout=0.05), SlowCleanup([]), Collector())

    async def main() -> tuple[bool, int]:
        task = asyncio.create_task(poller.poll_once())
        await asyncio.sleep(0.08)  # the deadline has fired, the driver is cleaning up
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True, task.cancelling()
        return False, task.cancelling()

    cancelled, cancelling = run_virtual(main())
    assert cancelled and cancelling == 1
    assert poller.health.polls_failed == 0
