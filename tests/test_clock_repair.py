"""Readings taken before the wall clock is synchronised (a Pi without RTC boots in 1970): held in the
outbox with their boot and clock offset, repaired from the monotonic clock at the first sync of the
same boot, flagged ``estimated`` when their boot never synchronised; a clock step while running is
logged, counted and splits the aggregation windows. Real pipeline, outbox and processor; the clock
is injected here (tests/test_clock_faketime.py runs the real agent under libfaketime and chrony)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import jsonschema  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

from agent.config import load_config_text  # noqa: E402
from agent.model import Batch, MetricSpec, Quality  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.series import LatestValues, SeriesTable  # noqa: E402
from agent.store.outbox import Outbox, Pending, Priority  # noqa: E402
from agent.uplink.topics import Topics  # noqa: E402

SYNCED_AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z, what NTP sets
UNSYNCED = int(Quality.CLOCK_UNSYNCED)


class FakeClock:
    """A wall clock that can be set (as NTP or fake-hwclock set it) over a monotonic clock."""

    def __init__(self, wall_ms: int, mono_s: float):
        self.offset_ms = wall_ms - int(mono_s * 1000)
        self.mono_s = mono_s

    def now_ms(self) -> int:
        return int(self.mono_s * 1000) + self.offset_ms

    def monotonic(self) -> float:
        return self.mono_s

    def advance(self, s: float) -> None:
        self.mono_s += s

    def set_wall(self, wall_ms: int) -> None:
        self.offset_ms = wall_ms - int(self.mono_s * 1000)


def make(tmp_path: Path, clock: FakeClock, *, boot: str = "boot-1", processing: bool = False):
    text = f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n'
    if processing:
        (tmp_path / "m.csv").write_text("timestamp,value\n2026-01-01T00:00:00,1\n")
        text += ('[processing]\nwindows = ["1m"]\n[processing.anomaly]\nenabled = false\n'
                 f'[[devices]]\nname = "m"\ntype = "replay"\nfile = "{tmp_path / "m.csv"}"\npublish = "both"\n')
    cfg = load_config_text(text, env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V")])
    processor = None
    if processing:
        from agent.processing import Processor
        processor = Processor(cfg, series, state_dir=tmp_path, clock=clock)
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                    latest=LatestValues(len(series)), clock=clock, boot=boot, processor=processor)
    return pipe, outbox


def poll(pipe: Pipeline, clock: FakeClock, value: float = 230.0) -> int:
    """One reading stamped as a poller stamps it (the wall clock now)."""
    ts = clock.now_ms()
    pipe.submit("m", Batch.from_columns(np.array([0]), np.array([ts]), np.array([value])))
    return ts


SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "payload.schema.json").read_text())


def bodies(outbox: Outbox, *, held: bool = False) -> list[dict]:
    out = [orjson.loads(r.payload) for r in outbox.peek(1000, held=held)]
    for body in out:  # every body, repaired, estimated or marked, is a documented message
        assert jsonschema.Draft202012Validator(SCHEMA).is_valid(body), body
    return out


def telemetry(outbox: Outbox) -> list[dict]:
    return [r for b in bodies(outbox) if "readings" in b for r in b["readings"]]


def test_unsynced_readings_are_held_then_repaired_from_the_monotonic_clock(tmp_path: Path, caplog) -> None:
    clock = FakeClock(wall_ms=10_000, mono_s=10.0)  # booted in 1970
    pipe, outbox = make(tmp_path, clock)
    taken_mono = []
    for _ in range(3):
        poll(pipe, clock, 231.0)
        taken_mono.append(clock.monotonic())
        pipe.cycle()
        clock.advance(5)
    assert bodies(outbox) == [], "nothing taken before sync may be published"
    held = bodies(outbox, held=True)
    assert len(held) == 3 and all(r["q"] & UNSYNCED for b in held for r in b["readings"])
    assert pipe.stats.clock_waiting == 3
    seqs = [b["seq"] for b in held]

    clock.advance(100)
    clock.set_wall(SYNCED_AT)  # NTP steps the clock
    with caplog.at_level(logging.INFO, "edge_agent.clock"):
        pipe.cycle()
    offset = SYNCED_AT - int(clock.monotonic() * 1000)
    readings = telemetry(outbox)
    assert [r["ts"] for r in readings] == [int(m * 1000) + offset for m in taken_mono]
    assert [r["q"] for r in readings] == [0, 0, 0]  # the timestamps are true now
    published = bodies(outbox)
    assert {b["clock"] for b in published} == {"repaired"} and [b["seq"] for b in published] == seqs
    assert outbox.take_released() is not None  # the uplink is told to look back for them
    assert pipe.stats.clock_repaired == 3 and pipe.stats.clock_waiting == 0
    assert pipe.stats.clock_steps == 1 and pipe.stats.clock_last_step_s > 1e6
    assert "stepped" in caplog.text and "repaired" in caplog.text

    poll(pipe, clock)  # after the sync: published at once, not flagged
    pipe.cycle()
    last = bodies(outbox)[-1]
    assert "clock" not in last and last["readings"][0]["q"] == 0 and last["readings"][0]["ts"] == clock.now_ms()


def test_fake_hwclock_time_is_repaired_too_when_a_time_source_must_confirm(tmp_path: Path, monkeypatch) -> None:
    from agent import timesync
    synced = {"now": False}
    monkeypatch.setattr(timesync, "cached_time_sync_status",
                        lambda: timesync.TimeSync(synced["now"], "chrony", ""))
    clock = FakeClock(wall_ms=SYNCED_AT - 3 * 3_600_000, mono_s=20.0)  # last shutdown's time, 3 h behind
    cfg_dir = tmp_path
    text = f'[gateway]\nid = "gw"\nstate_dir = "{cfg_dir}"\nrequire_time_sync = true\n'
    cfg = load_config_text(text, env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V")])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"),
                    latest=LatestValues(len(series)), clock=clock, boot="b")
    poll(pipe, clock)
    pipe.cycle()
    assert bodies(outbox) == []
    clock.advance(30)
    clock.set_wall(SYNCED_AT)  # chrony steps the clock ...
    pipe.cycle()
    assert bodies(outbox) == [] and pipe.stats.clock_steps == 1  # ... but has not said "synchronised" yet
    poll(pipe, clock)  # stamped with the stepped clock while still unsynchronised
    pipe.cycle()
    clock.advance(10)
    synced["now"] = True
    pipe.cycle()
    assert [r["ts"] for r in telemetry(outbox)] == [SYNCED_AT - 30_000, SYNCED_AT]


def test_rows_of_an_earlier_boot_that_never_synchronised_are_published_flagged_estimated(tmp_path: Path) -> None:
    clock = FakeClock(wall_ms=10_000, mono_s=10.0)
    pipe, outbox = make(tmp_path, clock, boot="boot-1")
    ts = poll(pipe, clock)
    pipe.cycle()
    outbox.close()  # power cut before NTP ever answered

    clock = FakeClock(wall_ms=12_000, mono_s=8.0)  # the next boot, in 1970 again
    pipe, outbox = make(tmp_path, clock, boot="boot-2")
    pipe.cycle()
    (body,) = bodies(outbox)
    assert body["clock"] == "estimated" and body["readings"][0]["ts"] == ts
    assert body["readings"][0]["q"] & UNSYNCED, "an unrepaired timestamp is never passed off as real time"
    assert pipe.stats.clock_estimated == 1


def test_a_restart_in_the_same_boot_still_repairs_the_earlier_run(tmp_path: Path) -> None:
    clock = FakeClock(wall_ms=10_000, mono_s=10.0)
    pipe, outbox = make(tmp_path, clock, boot="boot-1")
    poll(pipe, clock)
    pipe.cycle()
    outbox.close()
    clock.advance(50)
    clock.set_wall(SYNCED_AT)
    pipe, outbox = make(tmp_path, clock, boot="boot-1")
    pipe.cycle()
    (reading,) = telemetry(outbox)
    assert reading["ts"] == SYNCED_AT - 50_000 and reading["q"] == 0


def test_command_answers_are_not_held_but_marked_while_unsynced(tmp_path: Path) -> None:
    clock = FakeClock(wall_ms=10_000, mono_s=10.0)
    pipe, outbox = make(tmp_path, clock)
    pipe.submit_message(Pending(Priority.EVENT, "edge/gw/cmd/m/result", {"status": "refused", "device": "m", "ts": 10_000}))
    pipe.cycle()
    (body,) = bodies(outbox)
    assert body["clock"] == "unsynced"


def test_a_step_while_running_splits_windows_and_moves_readings_of_the_same_cycle(tmp_path: Path, caplog) -> None:
    clock = FakeClock(wall_ms=SYNCED_AT + 10_000, mono_s=100.0)
    pipe, outbox = make(tmp_path, clock, processing=True)
    for _ in range(5):
        poll(pipe, clock)
        clock.advance(1)
        pipe.cycle()
    before_step = poll(pipe, clock)  # stamped, then the clock is stepped back 20 s before the commit
    clock.advance(0.5)
    clock.set_wall(clock.now_ms() - 20_000)
    with caplog.at_level(logging.WARNING, "edge_agent.clock"):
        pipe.cycle()
    assert pipe.stats.clock_steps == 1 and pipe.stats.clock_last_step_s == -20.0
    assert "stepped by -20.000 s" in caplog.text
    aggs = [b for b in bodies(outbox) if b.get("window") == "1m"]
    assert len(aggs) == 1 and aggs[0]["split"] == "clock_step" and aggs[0]["aggregates"][0]["count"] == 5
    assert telemetry(outbox)[-1]["ts"] == before_step - 20_000  # on the clock of what comes after it


async def test_the_uplink_sends_rows_released_below_its_cursor_before_anything_newer(
        tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    """Held rows are passed over (an answer sent meanwhile moves the cursor beyond them); once they are
    repaired and released the uplink looks back and sends them, oldest first."""
    import asyncio

    from agent.config.schema import MqttConfig
    from agent.store import clockhold
    from agent.store.clockhold import ClockHold
    from agent.uplink.mqtt import Uplink

    sub = mqtt_subscriber(mosquitto, "edge/gw/#")
    outbox = Outbox(tmp_path / "o.db", max_bytes=8 * 1024 * 1024, gateway="gw")
    hold = ClockHold("boot-1", 5_000)
    reading = {"ts": 10_000, "metric": "v", "value": 1.0, "unit": "V", "q": UNSYNCED}
    outbox.append([Pending(Priority.RAW, "edge/gw/telemetry/m", {"v": 1, "device": "m", "readings": [dict(reading)]},
                           1, hold) for _ in range(3)])
    uplink = Uplink(MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_min=0.05), "gw", outbox)
    task = asyncio.create_task(uplink.run())
    try:
        outbox.append([Pending(Priority.EVENT, "edge/gw/cmd/m/result", {"status": "refused", "device": "m"})])
        uplink.wake()
        await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.topic.endswith("/result"))
        await asyncio.sleep(0.3)
        assert not [m for m in sub.snapshot() if "/telemetry/" in m.topic], "held rows were published"
        assert clockhold.release(outbox, "boot-1", synced_offset_ms=SYNCED_AT) == 3
        uplink.wake()
        got = await asyncio.to_thread(sub.wait_for, 3, 60, predicate=lambda m: "/telemetry/" in m.topic)
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 60)
        outbox.close()
    bodies_ = [orjson.loads(m.payload) for m in got]
    assert [b["seq"] for b in bodies_] == [1, 2, 3] and {b["clock"] for b in bodies_} == {"repaired"}
    assert {b["readings"][0]["ts"] for b in bodies_} == {10_000 - 5_000 + SYNCED_AT}


def test_an_outbox_of_the_previous_schema_can_still_be_inspected(tmp_path: Path) -> None:
    import sqlite3

    from agent.store.db import Db
    from agent.store.migrations import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "o.db")
    db = Db(conn)
    with db.atomic():
        migrate(db, MIGRATIONS[:2])  # as the agent before clock holds left it
        db.execute("INSERT INTO outbox (seq, topic, payload, priority, created_ms) VALUES (1, 't/x', X'7B7D', 0, 1)")
    conn.close()
    with Outbox(tmp_path / "o.db", max_bytes=8 * 1024 * 1024, gateway="gw", readonly=True) as ro:
        assert [r.seq for r in ro.peek(10)] == [1]


def test_a_large_backlog_is_repaired_a_bounded_chunk_per_cycle(tmp_path: Path) -> None:
    from agent.pipeline_clock import RELEASE_PER_CYCLE

    clock = FakeClock(wall_ms=10_000, mono_s=10.0)
    pipe, outbox = make(tmp_path, clock)
    n = 2 * RELEASE_PER_CYCLE + 50
    for i in range(n):  # one message per cycle
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([clock.now_ms()]), np.array([float(i)])))
        pipe.cycle()
        clock.advance(1)
    assert len(bodies(outbox, held=True)) == n and bodies(outbox) == []
    clock.advance(5)
    clock.set_wall(SYNCED_AT)
    released = []
    for _ in range(5):
        pipe.cycle()  # the event loop runs between cycles: no cycle rewrites more than the bound
        released.append(len(bodies(outbox)))
        assert pipe._idle_timeout() <= pipe.config.store.commit_interval or released[-1] == n
    assert released[:3] == [RELEASE_PER_CYCLE, 2 * RELEASE_PER_CYCLE, n]
    assert pipe.stats.clock_repaired == n and pipe.stats.clock_waiting == 0
    assert all(r["ts"] > SYNCED_AT - 3_600_000 and r["q"] == 0 for r in telemetry(outbox))


def test_an_earlier_boots_backlog_is_released_a_bounded_chunk_per_cycle(tmp_path: Path) -> None:
    from agent.pipeline_clock import RELEASE_PER_CYCLE

    clock = FakeClock(wall_ms=10_000, mono_s=10.0)
    pipe, outbox = make(tmp_path, clock, boot="boot-1")
    n = RELEASE_PER_CYCLE + 10
    for i in range(n):
        pipe.submit("m", Batch.from_columns(np.array([0]), np.array([clock.now_ms()]), np.array([float(i)])))
        pipe.cycle()
        clock.advance(1)
    outbox.close()
    pipe, outbox = make(tmp_path, FakeClock(wall_ms=10_000, mono_s=5.0), boot="boot-2")
    pipe.cycle()
    assert len(bodies(outbox)) == RELEASE_PER_CYCLE and pipe._idle_timeout() <= pipe.config.store.commit_interval
    pipe.cycle()
    assert len(bodies(outbox)) == n and pipe.stats.clock_estimated == n
    assert pipe._idle_timeout() > pipe.config.store.commit_interval  # nothing left to do
