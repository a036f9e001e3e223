"""Outbox behaviour: seqs, ordering, persistence across restarts and kill -9, disk cap, bad input."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.store import Outbox, OutboxError, Pending, Priority
from agent.store.migrations import MIGRATIONS

MB = 1024 * 1024


def body(i: int, pad: int = 0) -> dict:
    return {"v": 1, "device": "m1", "readings": [{"ts": 1_700_000_000_000 + i, "metric": "p", "value": float(i),
                                                 "unit": "W", "q": 0}], "pad": "x" * pad}


@pytest.fixture
def outbox(tmp_path: Path):
    ob = Outbox(tmp_path / "outbox.db", max_bytes=16 * MB, gateway="gw1")
    yield ob
    ob.close()


def test_append_assigns_increasing_seqs_and_stamps_bodies(outbox: Outbox) -> None:
    seqs = outbox.append([Pending(Priority.RAW, "edge/gw1/telemetry/m1", body(i)) for i in range(5)])
    seqs += outbox.append([Pending(Priority.EVENT, "edge/gw1/event", {"v": 1, "kind": "x"})])
    assert seqs == [1, 2, 3, 4, 5, 6]
    rows = outbox.peek(100)
    assert [r.seq for r in rows] == seqs
    assert [r.rowid for r in rows] == sorted(r.rowid for r in rows)
    decoded = [orjson.loads(r.payload) for r in rows]
    assert all(d["gateway"] == "gw1" for d in decoded)
    assert [d["seq"] for d in decoded] == seqs
    assert decoded[2]["readings"][0]["value"] == 2.0
    assert rows[-1].priority is Priority.EVENT and rows[-1].topic == "edge/gw1/event"
    # paging with after_rowid
    assert [r.seq for r in outbox.peek(2, after_rowid=rows[1].rowid)] == [3, 4]
    st_ = outbox.stats()
    assert st_.depth == 6 and st_.last_seq == 6 and st_.oldest_created_ms == rows[0].created_ms


def test_numpy_values_and_nan_encode(outbox: Outbox) -> None:
    outbox.append([Pending(Priority.RAW, "t/x", {"v": 1, "arr": np.arange(3), "x": np.float64("nan")})])
    d = orjson.loads(outbox.peek(1)[0].payload)
    assert d["arr"] == [0, 1, 2] and d["x"] is None


def test_seq_and_rowid_never_reused_after_delete_and_reopen(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    with Outbox(p, max_bytes=MB, gateway="gw1") as ob:
        ob.append([Pending(Priority.RAW, "t", body(i)) for i in range(3)])
        last_rowid = ob.peek(10)[-1].rowid
        assert ob.delete(r.rowid for r in ob.peek(10)) == 3
        assert ob.stats().depth == 0
    with Outbox(p, max_bytes=MB, gateway="gw1") as ob:
        assert ob.stats().last_seq == 3
        assert ob.append([Pending(Priority.RAW, "t", body(9))]) == [4]
        assert ob.peek(10)[0].rowid > last_rowid


def test_delete_ignores_unknown_rows(outbox: Outbox) -> None:
    outbox.append([Pending(Priority.RAW, "t", body(i)) for i in range(3)])
    rows = outbox.peek(10)
    assert outbox.delete([rows[0].rowid, 999_999]) == 1
    assert outbox.delete([rows[0].rowid]) == 0
    assert [r.seq for r in outbox.peek(10)] == [2, 3]
    assert outbox.stats().depth == 2


def test_bad_message_is_refused_and_nothing_is_stored(outbox: Outbox) -> None:
    outbox.append([Pending(Priority.RAW, "t", body(0))])
    with pytest.raises(OutboxError, match=r"message 1 for t/b: body is not JSON-serialisable") as info:
        outbox.append([Pending(Priority.RAW, "t/a", body(1)), Pending(Priority.RAW, "t/b", {"x": object()})])
    assert info.value.index == 1
    with pytest.raises(OutboxError, match=r"message 0: invalid topic"):
        outbox.append([Pending(Priority.RAW, "t/#", body(1))])
    with pytest.raises(OutboxError, match=r"message 0: not a Pending"):
        outbox.append([Pending(7, "t", body(1))])  # type: ignore[arg-type]
    with pytest.raises(OutboxError, match=r"body must be a dict"):
        outbox.append([Pending(Priority.RAW, "t", [1, 2])])  # type: ignore[arg-type]
    assert [r.seq for r in outbox.peek(10)] == [1]
    assert outbox.append([Pending(Priority.RAW, "t", body(2))]) == [2]  # no seq was burnt


def test_not_a_database_gives_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match=f"cannot open outbox {p}"):
        Outbox(p, max_bytes=MB, gateway="gw1")
    with pytest.raises(OutboxError, match="minimum"):
        Outbox(tmp_path / "x.db", max_bytes=1000, gateway="gw1")


def test_schema_version_recorded_and_newer_db_refused(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    Outbox(p, max_bytes=MB, gateway="gw1").close()
    conn = sqlite3.connect(p)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="newer than this agent"):
        Outbox(p, max_bytes=MB, gateway="gw1")


def _outbox_v1(path: Path) -> None:
    """An outbox as the first schema version left it: two rows stored, seq 7 and 8."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER);
        INSERT INTO schema_migrations VALUES (1, 0);
        CREATE TABLE outbox (rowid INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, topic TEXT NOT NULL,
                             payload BLOB NOT NULL, priority INTEGER NOT NULL, created_ms INTEGER NOT NULL);
        CREATE INDEX outbox_priority_rowid ON outbox (priority, rowid);
        CREATE TABLE sequence (gateway TEXT PRIMARY KEY, last_seq INTEGER);
        CREATE TABLE drops (priority TEXT PRIMARY KEY, count INTEGER);
        INSERT INTO sequence VALUES ('gw1', 8);
        INSERT INTO drops VALUES ('raw', 4);
    """)
    conn.executemany("INSERT INTO outbox (seq, topic, payload, priority, created_ms) VALUES (?, ?, ?, 0, 5)",
                     [(s, "t/old", orjson.dumps({**body(s), "gateway": "gw1", "seq": s})) for s in (7, 8)])
    conn.commit()
    conn.close()


def test_outbox_of_the_previous_schema_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    p = tmp_path / "outbox.db"
    _outbox_v1(p)
    with Outbox(p, max_bytes=MB, gateway="gw1") as ob:
        old = ob.peek(10)
        assert [(r.seq, r.topic, r.readings) for r in old] == [(7, "t/old", 0), (8, "t/old", 0)]
        assert orjson.loads(old[0].payload)["seq"] == 7
        assert ob.stats().drops["raw"] == 4
        assert ob.append([Pending(Priority.RAW, "t/new", body(9), readings=1)]) == [9]
        assert [(r.seq, r.readings) for r in ob.peek(10)] == [(7, 0), (8, 0), (9, 1)]
    with Outbox(p, max_bytes=MB, gateway="gw1") as ob:  # migrated once: a second open changes nothing
        assert [(r.seq, r.readings) for r in ob.peek(10)] == [(7, 0), (8, 0), (9, 1)]
    conn = sqlite3.connect(p)
    assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(range(1, len(MIGRATIONS) + 1))
    conn.close()


def test_readings_count_is_stored_with_each_row(outbox: Outbox) -> None:
    outbox.append([Pending(Priority.RAW, "t/a", body(1), readings=100), Pending(Priority.EVENT, "t/e", {"k": 1})])
    assert [r.readings for r in outbox.peek(10)] == [100, 0]


def test_closed_outbox_raises(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_bytes=MB, gateway="gw1")
    ob.close()
    with pytest.raises(OutboxError, match="closed"):
        ob.peek(1)


def _disk_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.parent.glob(p.name + "*"))


def test_disk_cap_drops_oldest_raw_first_and_counts(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    cap = MB
    prio_cycle = [Priority.RAW] * 6 + [Priority.AGG, Priority.EVENT, Priority.AUDIT]
    with Outbox(p, max_bytes=cap, gateway="gw1") as ob:
        n = 0
        for _ in range(150):  # ~1.35 MB of payload into a 1 MB cap
            ob.append([Pending(prio_cycle[(n + i) % 9], "t", body(n + i, pad=1000)) for i in range(9)])
            n += 9
            assert _disk_bytes(p) <= cap + 64 * 1024, (n, ob.stats(), [(f.name, f.stat().st_size) for f in tmp_path.iterdir()])
        st_ = ob.stats()
        kept = Counter(r.priority for r in ob.peek(10_000))
        assert st_.drops["raw"] > 0
        assert st_.drops["audit"] == 0 and st_.drops["event"] == 0 and st_.drops["agg"] == 0
        assert kept[Priority.AGG] == kept[Priority.EVENT] == kept[Priority.AUDIT] == n // 9
        assert st_.depth == sum(kept.values()) == n - st_.drops["raw"]
        # the oldest raw rows went: the surviving raw rows are the newest ones
        raw_seqs = [r.seq for r in ob.peek(10_000) if r.priority is Priority.RAW]
        all_raw = [s + 1 for s in range(n) if prio_cycle[s % 9] is Priority.RAW]
        assert raw_seqs == all_raw[-len(raw_seqs):]
        drops = st_.drops
    with Outbox(p, max_bytes=cap, gateway="gw1") as ob:
        assert ob.stats().drops == drops  # persisted for health


def test_disk_cap_eventually_drops_higher_priorities_in_order(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    with Outbox(p, max_bytes=512 * 1024, gateway="gw1") as ob:
        for i in range(60):
            ob.append([Pending(Priority(i * 4 // 60), "t", body(i, pad=20_000))])  # raw, agg, event, audit
        d = ob.stats().drops
        assert d["raw"] == 15 and d["agg"] == 15 and d["event"] > 0 and d["audit"] == 0
        assert _disk_bytes(p) <= 512 * 1024 + 64 * 1024


def test_export_writes_json_lines(outbox: Outbox) -> None:
    outbox.append([Pending(Priority.RAW, "t/1", body(1)), Pending(Priority.AUDIT, "t/2", {"v": 1, "a": 1})])
    buf = io.StringIO()
    assert outbox.export(buf) == 2
    lines = [orjson.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["topic"] for x in lines] == ["t/1", "t/2"]
    assert lines[1]["priority"] == "audit" and lines[1]["body"]["seq"] == 2
    buf = io.StringIO()
    assert outbox.export(buf, limit=1) == 1


CRASHER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from agent.store import Outbox, Pending, Priority
    ob = Outbox(Path(sys.argv[1]), max_bytes=8 * 1024 * 1024, gateway="gw1")
    i = 0
    while True:
        seqs = ob.append([Pending(Priority.RAW, "t", {"v": 1, "i": i + k}) for k in range(10)])
        i += 10
        print(seqs[-1], flush=True)
""")


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(p)], stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = 0
        assert proc.stdout is not None
        while acknowledged < 500:
            acknowledged = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with Outbox(p, max_bytes=8 * MB, gateway="gw1") as ob:
        seqs = [r.seq for r in ob.peek(100_000)]
        assert seqs[:acknowledged] == list(range(1, acknowledged + 1))
        assert seqs == list(range(1, len(seqs) + 1))
        assert ob.append([Pending(Priority.RAW, "t", {"v": 1})]) == [len(seqs) + 1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(st.tuples(st.just("append"), st.integers(0, 5)),
                              st.tuples(st.just("ack"), st.integers(0, 5)),
                              st.tuples(st.just("reopen"), st.just(0))), max_size=25))
def test_outbox_matches_a_fifo_model(tmp_path_factory: pytest.TempPathFactory, ops) -> None:
    p = tmp_path_factory.mktemp("h") / "o.db"
    ob = Outbox(p, max_bytes=4 * MB, gateway="gw1")
    model: list[int] = []
    last = 0
    try:
        for op, n in ops:
            if op == "append":
                seqs = ob.append([Pending(Priority.RAW, "t", {"v": 1}) for _ in range(n)])
                assert seqs == list(range(last + 1, last + n + 1))
                last += n
                model += seqs
            elif op == "ack":
                ob.delete(r.rowid for r in ob.peek(n))
                model = model[n:]
            else:
                ob.close()
                ob = Outbox(p, max_bytes=4 * MB, gateway="gw1")
            assert [r.seq for r in ob.peek(1000)] == model
            assert ob.stats().depth == len(model) and ob.stats().last_seq == last
    finally:
        ob.close()


def test_smallest_cap_still_keeps_the_newest_rows(tmp_path: Path) -> None:
    p = tmp_path / "o.db"
    with Outbox(p, max_bytes=256 * 1024, gateway="gw1") as ob:
        for i in range(100):
            ob.append([Pending(Priority.RAW, "t", body(i * 10 + k, pad=500)) for k in range(10)])
            assert _disk_bytes(p) <= 256 * 1024 + 64 * 1024
        st_ = ob.stats()
        seqs = [r.seq for r in ob.peek(10_000)]
    assert st_.drops["raw"] == 1000 - st_.depth and st_.depth > 100
    assert seqs == list(range(1001 - len(seqs), 1001))  # a contiguous tail: the newest survive


def test_acknowledged_rows_are_deleted_in_the_next_append_transaction(outbox: Outbox) -> None:
    """A PUBACK marks its row at once (never sent again); the delete rides on the next commit instead of
    a transaction (and an fsync) of its own."""
    outbox.append([Pending(Priority.RAW, "edge/gw1/telemetry/m1", body(i)) for i in range(3)])
    rows = outbox.peek(10)
    outbox.mark_acked([rows[0].rowid, rows[1].rowid])
    assert [r.rowid for r in outbox.peek(10)] == [rows[2].rowid] and outbox.stats().depth == 1
    assert outbox.db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3  # nothing written yet
    outbox.append([Pending(Priority.RAW, "edge/gw1/telemetry/m1", body(3))])
    assert outbox.db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    assert outbox.acked_pending_delete == 0 and outbox.stats().depth == 2
