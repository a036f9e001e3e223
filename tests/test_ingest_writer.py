"""The ingest's PostgreSQL writer against a real PostgreSQL 15: exactly once per (gateway, stream,
seq), gaps recorded and removed when late messages arrive, overlapping concurrent batches without
deadlock, a database restart survived, bad messages kept with a reason."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from agent.ingest.migrate import ensure_partitions, migrate
from agent.ingest.parse import Message, Rejected, Status, parse
from agent.ingest.writer import Writer
from tests.fleet_helpers import Postgres

TS = 1_767_225_600_000


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def db(pg: Postgres) -> Iterator[str]:
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        c.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        migrate(c)
    yield pg.dsn


def telemetry(gw: str, seq: int, *, stream: str | None = "s1", n: int = 3) -> Message:
    body: dict = {"v": 1, "gateway": gw, "seq": seq, "device": "meter1",
                  "readings": [{"ts": TS + seq * 1000 + i, "metric": "power", "value": float(i), "unit": "W", "q": 0}
                               for i in range(n)]}
    if stream is not None:
        body["stream"] = stream
    msg = parse(f"edge/{gw}/telemetry/meter1", orjson.dumps(body))
    assert isinstance(msg, Message)
    return msg


def q(dsn: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute(sql, args).fetchall()


def test_each_key_is_written_once_and_duplicates_are_counted(db: str) -> None:
    w = Writer(db)
    assert w.write([telemetry("gw1", 1), telemetry("gw1", 2), telemetry("gw1", 2)]) == 2
    assert w.write([telemetry("gw1", 2), telemetry("gw1", 3), telemetry("gw2", 1)]) == 2
    assert w.write([telemetry("gw1", 1, stream="s2")]) == 1  # a new outbox identity: a new key
    assert q(db, "SELECT count(*) FROM messages") == [(5,)]
    assert q(db, "SELECT count(*), count(DISTINCT (gateway, stream, seq, ts)) FROM readings") == [(15, 15)]
    assert w.stats.duplicates == 2 and w.stats.messages == 5 and w.stats.deadlocks == 0


def test_a_body_without_stream_is_keyed_with_an_empty_stream(db: str) -> None:
    Writer(db).write([telemetry("old-gw", 7, stream=None), telemetry("old-gw", 7, stream=None)])
    assert q(db, "SELECT gateway, stream, seq FROM messages") == [("old-gw", "", 7)]


def test_gaps_are_recorded_and_removed_when_late_messages_arrive(db: str) -> None:
    w = Writer(db)
    w.write([telemetry("gw", s) for s in (3, 4, 8, 10)])
    gaps = "SELECT first_seq, last_seq FROM gaps WHERE gateway = 'gw' ORDER BY 1"
    assert q(db, gaps) == [(5, 7), (9, 9)]
    w.write([telemetry("gw", 6), telemetry("gw", 9)])
    assert q(db, gaps) == [(5, 5), (7, 7)]
    w.write([telemetry("gw", 1)])  # below the first seq seen: 2 is now known to be missing
    assert q(db, gaps) == [(2, 2), (5, 5), (7, 7)]
    w.write([telemetry("gw", s) for s in (2, 5, 7, 7)])
    assert q(db, gaps) == []
    assert q(db, "SELECT min_seq, max_seq, messages FROM streams WHERE gateway = 'gw'") == [(1, 10, 10)]


def test_aggregates_energy_events_and_audit_land_in_their_tables(db: str) -> None:
    def m(topic: str, body: dict) -> Message:
        out = parse(topic, orjson.dumps({"gateway": "gw", "stream": "s", **body}))
        assert isinstance(out, Message)
        return out
    Writer(db).write([
        m("edge/gw/agg/meter1", {"seq": 1, "device": "meter1", "window": "15m", "start": TS, "end": TS + 900_000,
                                 "aggregates": [{"metric": "power", "unit": "W", "count": 3, "min": 1, "max": 3,
                                                 "mean": 2.0}]}),
        m("edge/gw/agg/meter1", {"seq": 2, "device": "meter1", "kind": "energy", "window": "1h", "start": TS,
                                 "end": TS + 3_600_000, "kwh": 4.5, "cost": 1.0, "currency": "EUR", "kgco2e": 0.9}),
        m("edge/gw/event", {"seq": 3, "kind": "anomaly_start", "ts": TS}),
        m("edge/gw/audit", {"seq": 4, "id": "c1", "ts": TS}),
        m("edge/gw/cmd/charger1/result", {"seq": 5, "id": "c1", "status": "accepted", "ts": TS}),
    ])
    assert q(db, "SELECT metric, count, mean FROM aggregates") == [("power", 3, 2.0)]
    assert q(db, "SELECT device, kwh FROM energy") == [("meter1", 4.5)]
    assert q(db, "SELECT kind FROM events ORDER BY seq") == [("event",), ("audit",), ("result",)]
    assert q(db, "SELECT count(*) FROM gaps") == [(0,)]


def test_bad_messages_are_refused_with_a_reason(db: str) -> None:
    for topic, body, reason in [
        ("edge/gw/telemetry/m", b"{not json", "not JSON"),
        ("edge/gw/telemetry/m", b'{"gateway": "gw", "device": "m", "readings": []}', "'seq'"),
        ("edge/gw/telemetry/m", b'{"gateway": "other", "seq": 1}', "does not match"),
        ("edge/gw/telemetry/m", b'{"gateway": "gw", "seq": 1, "device": "m", "readings": [{"ts": "x"}]}',
         "readings[0].ts"),
    ]:
        with pytest.raises(Rejected, match=re.escape(reason)):
            parse(topic, body)
    assert parse("edge/gw/cmd/charger1", b'{"id": "c"}') is None  # a command to the gateway: not ours
    Writer(db).write([], rejected=[("edge/gw/telemetry/m", "body is not JSON", b"{not json")])
    assert q(db, "SELECT topic, reason, body FROM rejected") == [("edge/gw/telemetry/m", "body is not JSON",
                                                                b"{not json")]


def test_a_late_last_will_does_not_overwrite_a_newer_online(db: str) -> None:
    def st(state: str, ts: int) -> Status:
        out = parse("edge/gw/status", orjson.dumps({"v": 1, "gateway": "gw", "state": state, "ts": ts}))
        assert isinstance(out, Status)
        return out
    w = Writer(db)
    w.write([], [st("online", TS + 10)])
    w.write([], [st("offline", TS)])  # the will of the connection opened at TS, delivered late
    assert q(db, "SELECT state FROM gateway_status") == [("online",)]
    w.write([], [st("offline", TS + 10)])
    assert q(db, "SELECT state FROM gateway_status") == [("offline",)]


def test_overlapping_batches_from_two_writers_commit_once_without_deadlock(db: str) -> None:
    keys = [(f"gw{g:03d}", s) for g in range(40) for s in range(1, 26)]
    errors: list[BaseException] = []
    writers = [Writer(db), Writer(db)]

    def run(w: Writer, seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(12):
                batch = rnd.sample(keys, 300)  # unsorted, overlapping the other writer's batches
                w.write([telemetry(g, s, n=1) for g, s in batch])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=run, args=(w, i)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors
    assert sum(w.stats.deadlocks for w in writers) == 0
    assert q(db, "SELECT count(*) = count(DISTINCT (gateway, stream, seq)) FROM messages") == [(True,)]
    assert q(db, "SELECT count(*) FROM readings")[0][0] == q(db, "SELECT count(*) FROM messages")[0][0]
    assert sum(w.stats.messages for w in writers) == q(db, "SELECT count(*) FROM messages")[0][0]


def test_the_writer_survives_a_database_restart(pg: Postgres, db: str) -> None:
    w = Writer(db)
    w.write([telemetry("gw", 1)])
    pg.stop()
    done = threading.Event()
    t = threading.Thread(target=lambda: (w.write([telemetry("gw", 2), telemetry("gw", 1)]), done.set()))
    t.start()
    assert not done.wait(1.0)  # retrying while the database is down
    pg.start()
    t.join(120)
    assert done.is_set() and w.stats.reconnects >= 1
    assert q(db, "SELECT seq FROM messages ORDER BY seq") == [(1,), (2,)]


def test_daily_partitions_are_created_and_hold_the_rows(db: str) -> None:
    import datetime as dt
    with psycopg.connect(db, autocommit=True) as c:
        day = dt.date(2026, 1, 1)
        assert "readings_20260101" in ensure_partitions(c, today=day)
        assert ensure_partitions(c, today=day) == []  # idempotent
        assert migrate(c) == 1
    Writer(db).write([telemetry("gw", 1)])
    assert q(db, "SELECT count(*) FROM readings_20260101") == [(3,)]


def documented_query(name: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "fleet.md").read_text()
    m = re.search(rf"<!-- query: {name} -->\s*```sql\n(.*?)```", text, re.S)
    assert m, f"docs/fleet.md has no query {name}"
    return m.group(1)


def test_the_documented_queries_answer(db: str) -> None:
    import time as _time
    now = int(_time.time() * 1000)
    hour = now - now % 3_600_000

    def energy(seq: int, start: int, kwh: float) -> Message:
        out = parse("edge/gw/agg/meter1", orjson.dumps({
            "gateway": "gw", "stream": "s", "seq": seq, "device": "meter1", "kind": "energy", "window": "15m",
            "start": start, "end": start + 900_000, "kwh": kwh}))
        assert isinstance(out, Message)
        return out
    w = Writer(db)
    w.write([energy(1, hour, 1.0), energy(2, hour + 900_000, 2.5), energy(5, hour - 3_600_000, 4.0)])
    with psycopg.connect(db) as c:
        rows = c.execute(documented_query("energy")).fetchall()
        assert [(r[0], r[1], r[3]) for r in rows] == [("gw", "meter1", 4.0), ("gw", "meter1", 3.5)]
        lagging = c.execute(documented_query("gaps_or_lag")).fetchall()
    assert [(r[0], r[5], r[6]) for r in lagging] == [("gw", 1, 2)]  # seqs 3 and 4 missing


def test_a_message_the_database_refuses_is_rejected_and_the_rest_of_its_batch_written(db: str) -> None:
    poison = parse("edge/gw/telemetry/m", orjson.dumps({
        "gateway": "gw", "stream": "s1", "seq": 2, "device": "m",
        "readings": [{"ts": TS, "metric": "bad\u0000name", "value": 1.0, "unit": "W", "q": 0}]}))
    assert isinstance(poison, Message)
    w = Writer(db)
    assert w.write([telemetry("gw", 1), poison, telemetry("gw", 3)]) == 2
    assert q(db, "SELECT seq FROM messages ORDER BY seq") == [(1,), (3,)]
    [(topic, reason)] = q(db, "SELECT topic, reason FROM rejected")
    assert topic == "edge/gw/telemetry/m" and "database refused it" in reason
    assert q(db, "SELECT first_seq, last_seq FROM gaps") == [(2, 2)]  # and the hole it leaves is reported
