"""Pipeline commits: raw telemetry in ~100-reading messages, a bad message never blocks the rest, and
while the outbox cannot store anything (SQLite full, as on a full disk) the pipeline holds a bounded
amount in memory, counts what it evicts as drops and afterwards commits in reading order."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agent.config import load_config_text
from agent.errors import ConfigError
from agent.model import Batch, MetricSpec
from agent.pipeline import Pipeline
from agent.series import LatestValues, SeriesTable
from agent.store.outbox import Outbox, Pending, Priority
from agent.uplink.topics import Topics


def make(tmp_path, per_message=100, **kwargs):
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nreadings_per_message = {per_message}\n', env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V"), MetricSpec("p", "W")])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"), latest=LatestValues(len(series)), **kwargs)
    return pipe, outbox


def test_readings_are_committed_in_bounded_messages(tmp_path) -> None:
    pipe, outbox = make(tmp_path, per_message=100)
    n = 250
    pipe.submit("m", Batch.from_columns(np.arange(n) % 2, np.arange(n) + 1_700_000_000_000, np.arange(n) * 1.5))
    assert pipe.cycle() == 3
    rows = outbox.peek(10)
    import orjson
    bodies = [orjson.loads(r.payload) for r in rows]
    assert [len(b["readings"]) for b in bodies] == [100, 100, 50]
    assert [r.readings for r in rows] == [100, 100, 50]  # counted when committed, stored with the row
    assert [b["seq"] for b in bodies] == [1, 2, 3] and {r.topic for r in rows} == {"edge/gw/telemetry/m"}
    assert bodies[0]["readings"][1] == {"ts": 1_700_000_000_001, "metric": "p", "value": 1.5, "unit": "W", "q": 0}
    assert pipe.latest.get(1)[0] == (n - 1) * 1.5


def test_a_malformed_message_is_dropped_and_the_rest_still_committed(tmp_path) -> None:
    pipe, outbox = make(tmp_path)
    pipe.submit_message(Pending(Priority.EVENT, "edge/gw/event", {"kind": "ok-1"}))
    pipe.submit_message(Pending(Priority.EVENT, "edge/gw/event", {"kind": {1, 2}}))  # a set: not JSON
    pipe.submit_message(Pending(Priority.AUDIT, "edge/gw/audit", {"kind": "ok-2"}))
    assert pipe.cycle() == 2 and pipe.stats.commit_errors == 1
    assert [r.topic for r in outbox.peek(10)] == ["edge/gw/event", "edge/gw/audit"]


def fill_outbox_disk(outbox: Outbox) -> None:
    """SQLite's page limit at the current size: inserts fail with SQLITE_FULL, as on a full disk."""
    c = outbox.db.conn
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}")


def free_outbox_disk(outbox: Outbox) -> None:
    outbox.db.conn.execute("PRAGMA max_page_count = 1073741823")


def submit_readings(pipe: Pipeline, start: int, n: int) -> None:
    ts = np.arange(start, start + n, dtype=np.int64) + 1_700_000_000_000
    pipe.submit("m", Batch.from_columns(np.zeros(n), ts, np.arange(start, start + n) * 1.0))


def committed_bodies(outbox: Outbox) -> list[dict]:
    import orjson
    return [orjson.loads(r.payload) for r in outbox.peek(1_000_000)]


def test_disk_full_holds_bounded_memory_evicts_oldest_raw_and_keeps_order(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    pipe, outbox = make(tmp_path, per_message=10, hold_bytes=64 * 1024)
    submit_readings(pipe, 0, 100)
    assert pipe.cycle() == 10
    fill_outbox_disk(outbox)
    pipe.submit_message(Pending(Priority.AUDIT, "edge/gw/audit", {"kind": "audit-early"}))
    for i in range(1, 101):  # far more than 64 KiB of readings while nothing can be stored
        submit_readings(pipe, i * 100, 100)
        if i == 50:
            pipe.submit_message(Pending(Priority.EVENT, "edge/gw/event", {"kind": "event-mid"}))
        pipe._retry_at = 0  # retry every cycle here (the pipeline normally waits longer each time)
        assert pipe.cycle() == 0
    assert pipe.held.bytes <= 64 * 1024
    drops = outbox.stats().drops
    assert drops["raw"] > 0 and drops["agg"] == drops["event"] == drops["audit"] == 0
    assert pipe.stats.held == len(pipe.held) > 0 and pipe.commit_failing
    failures = [r for r in caplog.records if "commit failed" in r.getMessage()]
    assert len(failures) == 1, "the failure is logged once, not every cycle"

    free_outbox_disk(outbox)
    submit_readings(pipe, 20_000, 100)
    pipe._retry_at = 0
    committed = pipe.cycle()
    assert committed > 0 and len(pipe.held) == 0 and not pipe.commit_failing
    assert [r for r in caplog.records if "commit recovered" in r.getMessage()]
    bodies = committed_bodies(outbox)
    # messages held in memory keep their readings count through the outage
    assert [r.readings for r in outbox.peek(1_000_000)] == [len(b.get("readings", ())) for b in bodies]
    seqs = [b["seq"] for b in bodies]
    assert seqs == list(range(1, len(bodies) + 1))
    raw_ts = [r["ts"] for b in bodies if "readings" in b for r in b["readings"]]
    assert raw_ts == sorted(raw_ts), "seqs follow reading order"
    kept = {r["ts"] - 1_700_000_000_000 for b in bodies if "readings" in b for r in b["readings"]}
    assert set(range(100)) <= kept and set(range(20_000, 20_100)) <= kept  # the oldest held went first
    missing = set(range(100, 10_100)) - kept
    assert missing and max(missing) < min(set(range(100, 10_100)) & kept)
    drops = outbox.stats().drops  # the last cycle held (and evicted) once more before committing
    assert drops["raw"] == len(missing) // 10, "every evicted message is counted as a drop"
    kinds = [b.get("kind") for b in bodies]
    assert kinds.index("audit-early") < kinds.index("event-mid"), "events and audit are kept, in order"
    outbox.close()  # the drops counted while the disk was full were stored with the first commit after
    with Outbox(tmp_path / "o.db", max_bytes=outbox.max_bytes, gateway="gw") as reopened:
        assert reopened.stats().drops == drops


def test_events_and_audit_are_evicted_last(tmp_path) -> None:
    pipe, outbox = make(tmp_path, per_message=10, hold_bytes=8 * 1024)
    fill_outbox_disk(outbox)
    for i in range(20):
        pipe.submit_message(Pending(Priority.AUDIT, "edge/gw/audit", {"kind": "audit", "n": i}))
    for i in range(5):
        submit_readings(pipe, i * 100, 100)
        pipe.cycle()
    drops = outbox.stats().drops
    assert drops["raw"] > 0 and drops["audit"] == 0, drops  # raw messages go before any audit
    free_outbox_disk(outbox)
    pipe._retry_at = 0
    pipe.cycle()
    assert [b["n"] for b in committed_bodies(outbox) if b.get("kind") == "audit"] == list(range(20))


def test_publish_raw_sends_no_window_aggregates(tmp_path) -> None:
    """5-minute data replayed fast closes a 1-minute window per reading: with the default publish =
    "raw" none of those aggregates is published; with "both" they are."""
    import orjson

    from agent.driver import Clock
    from agent.processing import Processor

    csv = tmp_path / "s.csv"
    csv.write_text("timestamp,value\n2026-01-01T00:00:00,1\n")
    topics = {}
    for mode in ("raw", "both"):
        state = tmp_path / mode
        cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{state}"\n[[devices]]\nname = "m"\ntype = "replay"\n'
                               f'file = "{csv}"\npublish = "{mode}"\n', env={})
        series = SeriesTable()
        series.add_device("m", [MetricSpec("v", "V")])
        outbox = Outbox(state / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
        proc = Processor(cfg, series, state_dir=state, clock=Clock())
        pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                        latest=LatestValues(len(series)), processor=proc)
        n = 50  # one reading every 5 minutes
        pipe.submit("m", Batch.from_columns(np.zeros(n, np.int32), 1_767_225_600_000 + np.arange(n) * 300_000, np.ones(n)))
        pipe.cycle()
        topics[mode] = [r.topic for r in outbox.peek(1000)]
        assert all(orjson.loads(r.payload)["seq"] for r in outbox.peek(1000))
        outbox.close()
    assert "edge/gw/telemetry/m" in topics["raw"] and "edge/gw/agg/m" not in topics["raw"]
    assert topics["both"].count("edge/gw/agg/m") >= n - 1


def test_no_window_work_for_devices_that_publish_raw_readings(tmp_path) -> None:
    """Window aggregates are computed only for devices that publish them: with two raw devices and one
    "both", the window kernels see only the "both" device's readings and only its aggregates go out;
    with every device raw they are never called and the raw readings still all arrive."""
    import orjson

    from agent.driver import Clock
    from agent.processing import Processor

    csv = tmp_path / "s.csv"
    csv.write_text("timestamp,value\n2026-01-01T00:00:00,1\n")
    for modes in (("raw", "raw", "raw"), ("raw", "both", "raw")):
        state = tmp_path / "-".join(modes)
        text = f'[gateway]\nid = "gw"\nstate_dir = "{state}"\n'
        for name, mode in zip("abc", modes, strict=True):
            text += f'[[devices]]\nname = "{name}"\ntype = "replay"\nfile = "{csv}"\npublish = "{mode}"\n'
        cfg = load_config_text(text, env={})
        series = SeriesTable()
        for name in "abc":
            series.add_device(name, [MetricSpec("v", "V"), MetricSpec("p", "W")])
        outbox = Outbox(state / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
        proc = Processor(cfg, series, state_dir=state, clock=Clock())
        seen: list[np.ndarray] = []  # the series each window kernel call got
        for fn in ("window_step", "window_flush"):
            real = getattr(proc.K, fn)

            def counting(*args, real=real, fn=fn, seen=seen):
                seen.append(args[0].copy() if fn == "window_step" else np.array([-1]))
                return real(*args)

            setattr(proc.K, fn, counting)
        pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                        latest=LatestValues(len(series)), processor=proc)
        n = 50  # one reading every 5 minutes: a 1-minute window closes at every reading
        for name in "abc":
            ts = 1_767_225_600_000 + np.repeat(np.arange(n) * 300_000, 2)
            pipe.submit(name, Batch.from_columns(np.tile(np.arange(2, dtype=np.int32), n), ts, np.ones(2 * n)))
        pipe.cycle()
        rows = outbox.peek(10_000)
        readings = sum(r.readings for r in rows if "/telemetry/" in r.topic)
        agg_topics = {r.topic for r in rows if "/agg/" in r.topic}
        outbox.close()
        assert readings == 2 * n * modes.count("raw") + 2 * n * modes.count("both")
        if "both" not in modes:
            assert seen == [] and agg_topics == set()
        else:
            both = series.base("b")
            assert seen and all(set(s.tolist()) <= {both, both + 1, -1} for s in seen)
            assert agg_topics == {"edge/gw/agg/b"}
            assert sum(len(orjson.loads(r.payload)["aggregates"]) for r in rows if "/agg/" in r.topic) >= 2 * (n - 1)


def test_an_idle_pipeline_sleeps_until_readings_arrive(tmp_path) -> None:
    """Without work the pipeline does not cycle every commit interval (idle CPU); a submission wakes it
    and is committed after one commit interval, together with what arrived meanwhile."""
    import asyncio
    import time

    async def scenario() -> tuple[int, int, list[int]]:
        cfg_interval = 0.05
        pipe, outbox = make(tmp_path)
        object.__setattr__(pipe.config.store, "commit_interval", cfg_interval)
        cycles = 0
        real_cycle = pipe.cycle

        def counting_cycle(**kw):
            nonlocal cycles
            cycles += 1
            return real_cycle(**kw)

        pipe.cycle = counting_cycle
        task = asyncio.create_task(pipe.run())
        await asyncio.sleep(1.0)  # 20 commit intervals with nothing to do
        idle = cycles
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([1_700_000_000_000]), np.array([1.0])))
        pipe.submit("m", Batch.from_columns(np.array([1]), np.array([1_700_000_000_000]), np.array([2.0])))
        deadline = time.monotonic() + 60  # the first cycle may compile kernels: no fixed number of ticks
        while not outbox.peek(10) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        rows = outbox.peek(10)
        return idle, cycles - idle, [r.readings for r in rows]

    idle, busy, readings = asyncio.run(scenario())
    assert idle == 0
    assert busy == 1 and readings == [2]  # both submissions in one cycle and message


async def committed_at_start(pipe: Pipeline, outbox: Outbox, ts: int) -> None:
    """Submit one reading and wait for its commit: the first readings after start do not wait the
    batching delay, later ones do."""
    import asyncio
    import time

    before = len(outbox.peek(1000))
    pipe.submit("m", Batch.from_columns(np.array([0]), np.array([ts]), np.array([0.0])))
    deadline = time.monotonic() + 60  # the first cycle may compile kernels: no fixed number of ticks
    while len(outbox.peek(1000)) == before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(outbox.peek(1000)) == before + 1, "the first readings after start were not committed at once"


def pipeline_with_an_hour_long_batching_delay(tmp_path) -> tuple[Pipeline, Outbox]:
    """One device ``m`` with one metric; a commit interval never waited out in a test."""
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[store]\ncommit_interval = 10\n', env={})
    object.__setattr__(cfg.store, "commit_interval", 3600.0)  # its own instance; above the config's bound
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V")])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    return Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                    latest=LatestValues(len(series))), outbox


def test_the_first_readings_after_start_are_committed_without_the_batching_delay(tmp_path) -> None:
    """A technician watching the broker sees the first data as soon as it is read, not a commit
    interval later; the readings after it share commits again."""
    import asyncio

    async def scenario() -> tuple[list[int], list[int]]:
        pipe, outbox = pipeline_with_an_hour_long_batching_delay(tmp_path)
        task = asyncio.create_task(pipe.run())
        await committed_at_start(pipe, outbox, 1_700_000_000_000)
        first = [r.readings for r in outbox.peek(10)]
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([1_700_000_001_000]), np.array([1.0])))
        for _ in range(50):
            await asyncio.sleep(0)
        later = [r.readings for r in outbox.peek(10)]
        task.cancel()
        return first, later

    first, later = asyncio.run(scenario())
    assert first == [1]
    assert later == [1]  # the second reading waits the batching delay (an hour here)


def test_messages_without_readings_wait_the_batching_delay_before_the_first_readings_too(tmp_path) -> None:
    """A gateway whose devices have not answered yet still batches its other messages (events, answers)."""
    import asyncio

    async def scenario() -> list:
        pipe, outbox = pipeline_with_an_hour_long_batching_delay(tmp_path)
        task = asyncio.create_task(pipe.run())
        pipe.submit_message(Pending(Priority.EVENT, "edge/gw/events", {"kind": "test"}))
        for _ in range(50):
            await asyncio.sleep(0)
        rows = outbox.peek(10)
        task.cancel()
        return rows

    assert asyncio.run(scenario()) == []


def test_a_commit_wakes_the_pipeline_once_after_its_batching_delay(tmp_path) -> None:
    """Readings arriving at an idle pipeline arm the batching delay themselves: the pipeline's loop runs
    once per commit, when the delay is over, not also at the first submission to arm it (a wake-up a
    second more at a 1 s poll). Counted: the resumptions of the pipeline's coroutine per commit."""
    import asyncio
    import types

    @types.coroutine
    def counted(coro, steps: list[int]):
        it = coro.__await__()
        try:
            out = it.send(None)
            while True:
                try:
                    value = yield out
                except BaseException as e:  # noqa: BLE001 - handed on, as the task would
                    steps[0] += 1
                    out = it.throw(e)
                else:
                    steps[0] += 1
                    out = it.send(value)
        except StopIteration as e:
            return e.value

    async def scenario() -> tuple[list[int], int]:
        pipe, outbox = make(tmp_path)
        object.__setattr__(pipe.config.store, "commit_interval", 0.05)
        steps = [0]
        task = asyncio.ensure_future(counted(pipe.run(), steps))
        await asyncio.sleep(0.2)  # idle
        per_commit = []
        for k in range(4):  # the first readings go at once; the others wait the batching delay
            before, committed = steps[0], len(outbox.peek(100))
            pipe.submit("m", Batch.from_columns(np.array([0]), np.array([1_700_000_000_000 + k]), np.array([1.0])))
            pipe.submit("m", Batch.from_columns(np.array([1]), np.array([1_700_000_000_000 + k]), np.array([2.0])))
            async with asyncio.timeout(60):  # the first cycle may compile kernels: no fixed number of ticks
                while len(outbox.peek(100)) == committed:
                    await asyncio.sleep(0.01)
            per_commit.append(steps[0] - before)
        task.cancel()
        return per_commit, [r.readings for r in outbox.peek(100)]

    per_commit, readings = asyncio.run(scenario())
    assert readings == [2, 2, 2, 2]  # each commit took both submissions
    assert per_commit == [1, 1, 1, 1]


@pytest.mark.parametrize("setting", ["", "commit_readings = 500\n"])
def test_a_full_batch_is_committed_without_waiting_out_the_commit_interval(tmp_path, setting) -> None:
    """Readings arriving faster than a commit interval holds in bounded memory (100 meters x 60 values
    every 100 ms) start their commit once [store] commit_readings wait (4,096 by default); fewer keep
    waiting for the interval."""
    import asyncio
    import time

    async def scenario() -> tuple[list[int], list[int], int]:
        cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nreadings_per_message = 10000\n'
                               f'[store]\ncommit_interval = 10\n{setting}', env={})
        full = cfg.store.commit_readings
        object.__setattr__(cfg.store, "commit_interval", 3600.0)  # its own instance; never reached here
        series = SeriesTable()
        series.add_device("m", [MetricSpec("v", "V"), MetricSpec("p", "W")])
        outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
        pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                        latest=LatestValues(len(series)))
        task = asyncio.create_task(pipe.run())
        ts = 1_700_000_000_000
        await committed_at_start(pipe, outbox, ts - 1000)
        n = full - 1
        pipe.submit("m", Batch.from_columns(np.arange(n) % 2, np.full(n, ts), np.arange(n) * 1.0))
        for _ in range(20):
            await asyncio.sleep(0)
        before = [r.readings for r in outbox.peek(10)][1:]
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([ts + 100]), np.array([1.0])))
        deadline = time.monotonic() + 60  # the cycle may compile kernels: no fixed number of ticks
        while len(outbox.peek(10)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        return before, [r.readings for r in outbox.peek(10)][1:], full

    before, after, full = asyncio.run(scenario())
    assert full == (500 if setting else 4096)
    assert before == []  # still gathering: the interval has not passed and the batch is not full
    assert after == [full]  # one commit, as soon as the batch was full


def test_commit_readings_out_of_bounds_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"store\.commit_readings"):
        load_config_text('[gateway]\nid = "gw"\n[mqtt]\nhost = "h"\n[store]\ncommit_readings = 10\n', env={})


@pytest.mark.parametrize("commit_after", [None, 0.01])
def test_window_checks_ride_on_the_polls_commits_at_idle(tmp_path, monkeypatch, commit_after) -> None:
    """Devices polled every second with jitter (on the monotonic time the pipeline sleeps by): the
    windows are checked in the cycles the polls' commits cause anyway, and the pipeline never wakes
    between two polls for a check of its own (an idle gateway's CPU is its wake-ups), whether the polls'
    commit comes after the batching delay or as the polls end (nothing else due before the delay ends)."""
    import agent.pipeline as pipeline_mod
    from agent.driver import Clock
    from agent.processing import Processor

    now = [1000.0]
    monkeypatch.setattr(pipeline_mod.time, "monotonic", lambda: now[0])
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n', env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V")])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    proc = Processor(cfg, series, state_dir=tmp_path, clock=Clock())
    flushes = []
    real_flush = proc.flush
    proc.flush = lambda now_ms: (flushes.append(now[0]), real_flush(now_ms))[1]
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                    latest=LatestValues(len(series)), processor=proc)
    interval = cfg.store.commit_interval if commit_after is None else commit_after
    now[0] += interval  # the first poll's commit
    pipe.cycle()
    last, wakes_between_polls = now[0], 0
    jitter = [0.04, 0.0, 0.03, 0.01, 0.05, 0.0, 0.02, 0.04, 0.0, 0.01] * 2  # within the default 5 %
    for k, j in enumerate(jitter, start=1):
        poll = 1000.0 + k + j
        while last + pipe._idle_timeout() < poll:  # asleep until the idle timeout or the poll's submission
            now[0] = last = last + pipe._idle_timeout()
            pipe.cycle()
            wakes_between_polls += 1
        now[0] = last = poll + interval  # the poll's submission, committed one commit interval later
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([1_700_000_000_000 + k * 1000]), np.array([1.0])))
        pipe.cycle()
        now[0] = last
    outbox.close()
    assert wakes_between_polls == 0
    assert len(flushes) >= len(jitter)  # the windows were still checked every poll cycle
    assert max(np.diff(flushes)) <= pipeline_mod.FLUSH_S + max(jitter)


def test_polls_of_one_cycle_fill_messages_up_to_the_limit(tmp_path) -> None:
    """Three polls of 60 readings in one commit interval make messages of 100 and 80 readings, not
    three of 60 (each message costs a publish, an acknowledgement and a row)."""
    pipe, outbox = make(tmp_path, per_message=100)
    for k in range(3):
        ts = np.full(60, 1_700_000_000_000 + k * 1000)
        pipe.submit("m", Batch.from_columns(np.arange(60) % 2, ts, np.arange(60) + k * 100.0))
    assert pipe.cycle() == 2
    import orjson
    bodies = [orjson.loads(r.payload) for r in outbox.peek(10)]
    assert [len(b["readings"]) for b in bodies] == [100, 80]
    values = [r["value"] for b in bodies for r in b["readings"]]
    assert values == [float(i + k * 100) for k in range(3) for i in range(60)]  # reading order kept


def test_a_meter_polled_every_100_ms_makes_one_message_per_commit_at_the_default(tmp_path) -> None:
    """At the shipped defaults a 60-value meter polled twice per commit interval goes out as one
    message of 120 readings (the default used to split it into 100 and 20)."""
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n', env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec(f"v{i}", "V") for i in range(60)])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"), latest=LatestValues(len(series)))
    for k in range(2):
        pipe.submit("m", Batch.from_columns(np.arange(60), np.full(60, 1_700_000_000_000 + 100 * k), np.arange(60.0)))
    assert pipe.cycle() == 1
    assert [r.readings for r in outbox.peek(10)] == [120]


def test_acknowledged_rows_ride_on_the_next_commit_not_one_of_their_own(tmp_path) -> None:
    """A PUBACK's delete waits for the next commit: an idle cycle in between writes nothing (no
    transaction, no fsync), and the pipeline does not wake early for it."""
    pipe, outbox = make(tmp_path)
    batch = Batch.from_columns(np.arange(4) % 2, np.full(4, 1_700_000_000_000), np.arange(4) * 1.0)
    pipe.submit("m", batch)
    assert pipe.cycle() == 1
    outbox.mark_acked([r.rowid for r in outbox.peek(10)])
    changes = outbox.db.conn.total_changes
    assert pipe._idle_timeout() > pipe.config.store.commit_interval
    assert pipe.cycle() == 0 and outbox.db.conn.total_changes == changes  # nothing written
    assert outbox.stats().depth == 0 and outbox.peek(10) == []  # yet not waiting, not sent again
    pipe.submit("m", batch)
    assert pipe.cycle() == 1
    assert outbox.db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1  # deleted with it


@pytest.mark.parametrize("interval", [1.0, 0.1])
def test_the_polls_commit_is_made_when_the_rounds_last_poll_ends_if_none_is_due_before_the_delay_ends(
        tmp_path, interval) -> None:
    """Two meters polled every second, answering in 10 ms: their readings are committed as soon as the
    second poll of a round has ended, not when the batching delay (0.2 s) ends: sooner, and without a
    wake-up for the delay. Polled every 0.1 s, a poll falls due within the delay, and the commit waits for
    it as before. Virtual time: commit times and readings per commit, exact."""
    import asyncio

    from agent.config.schema import DeviceConfig
    from agent.scheduler import Poller, PollsInFlight
    from tests.virtual_time import LoopClock, run_virtual

    class Meter:
        def metrics(self):
            return [MetricSpec("v", "V")]

        async def open(self):
            pass

        async def read(self):
            await asyncio.sleep(0.01)
            return Batch.from_columns(np.array([0]), np.array([1_700_000_000_000]), np.array([1.0]))

        async def close(self):
            pass

    async def main() -> list[tuple[float, int]]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop)
        cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[store]\ncommit_interval = 0.2\n', env={})
        series = SeriesTable()
        for name in ("a", "b"):
            series.add_device(name, [MetricSpec("v", "V")])
        outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
        pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                        latest=LatestValues(len(series)), clock=clock)
        commits: list[tuple[float, int]] = []
        append = outbox.append

        def recorded(items):
            commits.append((round(loop.time(), 3), sum(p.readings for p in items)))
            return append(items)

        outbox.append = recorded  # type: ignore[method-assign]
        flight = PollsInFlight(clock, on_idle=pipe.polls_done)
        pipe.quiet = flight.quiet_for
        pollers = [Poller(DeviceConfig(name=n, type="meter", poll_interval=interval, timeout=0.5, jitter=0.0), Meter(),
                          pipe.submit, clock=clock, flight=flight) for n in ("a", "b")]
        tasks = [asyncio.create_task(p.run()) for p in pollers] + [asyncio.create_task(pipe.run())]
        await asyncio.sleep(3.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()
        return commits

    commits = run_virtual(main())
    if interval == 1.0:  # the first readings at once; then each round's two readings as its last poll ends
        assert commits[1:] == [(1.01, 2), (2.01, 2), (3.01, 2)], commits
    else:  # the batching delay as before: each commit takes the polls of 0.2 s
        assert all(n >= 4 for _, n in commits[2:-1]), commits
        assert len(commits) <= 3.5 / 0.2 + 2, commits
