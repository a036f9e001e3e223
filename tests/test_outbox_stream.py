"""The outbox's identity (``stream``): created with the state directory, kept across restarts,
upgrades and a quarantined database, new for a new state directory; carried in every message, so a
reinstalled gateway that starts again at seq 1 never collides upstream on (gateway, stream, seq)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from agent.store import Outbox, Pending, Priority
from agent.store.quarantine import open_outbox
from agent.store.seqmark import Mark, mark_path, read_mark, write_mark
from tests.chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

MB = 1024 * 1024


def make(state: Path, gateway: str = "gw1") -> Outbox:
    return Outbox(state / "outbox.db", max_bytes=8 * MB, gateway=gateway)


def append(ob: Outbox, n: int = 3) -> list[dict]:
    bodies = [{"v": 1, "device": "m", "readings": []} for _ in range(n)]
    ob.append([Pending(Priority.RAW, "edge/gw1/telemetry/m", b) for b in bodies])
    return bodies


def test_two_fresh_state_dirs_with_the_same_gateway_get_different_streams(tmp_path: Path) -> None:
    with make(tmp_path / "a") as a, make(tmp_path / "b") as b:
        ba, bb = append(a), append(b)
    assert [x["seq"] for x in ba] == [x["seq"] for x in bb] == [1, 2, 3]  # same gateway, both start at 1
    assert ba[0]["stream"] != bb[0]["stream"]
    assert uuid.UUID(ba[0]["stream"]).version == 4
    keys = {(x["gateway"], x["stream"], x["seq"]) for x in ba + bb}
    assert len(keys) == 6  # nothing collides on the dedupe key


def test_restart_keeps_the_stream_and_every_row_carries_it(tmp_path: Path) -> None:
    with make(tmp_path) as ob:
        stream = ob.stream
        first = append(ob)
    with make(tmp_path) as ob:
        assert ob.stream == stream and ob.stats().stream == stream
        second = append(ob)
        stored = [orjson.loads(r.payload) for r in ob.peek(100)]
    assert [b["seq"] for b in first + second] == [1, 2, 3, 4, 5, 6]
    assert {b["stream"] for b in stored} == {stream} and len(stored) == 6
    assert list(stored[0])[-3:] == ["gateway", "stream", "seq"]  # stamped side by side
    assert read_mark(mark_path(tmp_path / "outbox.db")).stream == stream


def test_a_quarantined_database_keeps_the_stream_and_seq_continues_above(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    with make(tmp_path) as ob:
        stream = ob.stream
        last = append(ob)[-1]["seq"]
    db.write_bytes(b"not a database " * 1000)
    ob, quarantined = open_outbox(db, max_bytes=8 * MB, gateway="gw1")
    with ob:
        assert quarantined is not None and ob.stream == stream
        assert append(ob, 1)[0]["seq"] > last


def test_a_deleted_state_dir_gets_a_new_stream(tmp_path: Path) -> None:
    with make(tmp_path) as ob:
        old = ob.stream
        append(ob)
    for f in tmp_path.iterdir():
        f.unlink()
    with make(tmp_path) as ob:
        assert ob.stream != old
        assert append(ob, 1)[0]["seq"] == 1


def test_a_mark_from_before_streams_gets_one_and_keeps_its_seqs(tmp_path: Path) -> None:
    with make(tmp_path) as ob:
        append(ob)
    mark = mark_path(tmp_path / "outbox.db")
    write_mark(mark, Mark(reserved=5000, floor=3))  # as an agent without streams left it
    assert b"stream" not in mark.read_bytes()
    with make(tmp_path) as ob:
        stream = ob.stream
        assert stream and append(ob, 1)[0]["seq"] == 4  # the database's own continuation, no gap
    assert read_mark(mark) == Mark(reserved=5000, floor=3, stream=stream)


def test_a_damaged_stream_in_the_mark_is_refused_with_the_file_named(tmp_path: Path) -> None:
    mark = mark_path(tmp_path / "outbox.db")
    mark.write_bytes(b'{"reserved": 10, "floor": 1, "stream": 7}\n')
    with pytest.raises(Exception, match=str(mark)):
        make(tmp_path)


def test_inspection_reads_the_stream_without_creating_one(tmp_path: Path) -> None:
    with make(tmp_path) as ob:
        stream = ob.stream
        append(ob)
    with Outbox(tmp_path / "outbox.db", max_bytes=8 * MB, gateway="gw1", readonly=True) as ro:
        assert ro.stream == stream and ro.stats().stream == stream
    mark_path(tmp_path / "outbox.db").unlink()
    with Outbox(tmp_path / "outbox.db", max_bytes=8 * MB, gateway="gw1", readonly=True) as ro:
        assert ro.stream is None
    assert not mark_path(tmp_path / "outbox.db").exists()


# ------------------------------------------------------------------- the real agent, real mosquitto
STORED_TOPICS = ("/telemetry/", "/agg/", "/event", "/audit", "/result")


def stored_messages(sub) -> list[dict]:
    return [orjson.loads(m.payload) for m in sub.snapshot() if any(t in m.topic for t in STORED_TOPICS)]


def run_agent(tmp: Path, broker, sub, csv: Path, *, since: int) -> list[dict]:
    """Run ``edge-agent run`` until it has published all of the CSV and answered a command; stop it."""
    tmp.mkdir(exist_ok=True)
    cfg = agent_config(tmp, broker, {"meter": csv}, rows_per_read=50, poll=0.05)
    agent = AgentProcess(cfg, tmp / "agent.log").start()
    try:
        def new() -> list[dict]:
            return stored_messages(sub)[since:]
        assert wait_until(lambda: sum(len(b.get("readings", ())) for b in new()) >= 200, 120), agent.log_tail()
        for _ in range(30):  # until the agent has subscribed: a refused command leaves a result and an audit
            cmd = orjson.dumps({"id": f"c-{uuid.uuid4().hex[:8]}", "action": "no_such_action"})
            sub.client.publish("edge/gw-chaos/cmd/meter", cmd, qos=1)
            if wait_until(lambda: any(b.get("kind") == "command" for b in new()), 4):
                break
        assert any(b.get("kind") == "command" for b in new()), agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    # what was published at shutdown may still be on its way: wait until every seq the outbox no longer
    # holds (acknowledged by the broker) has arrived, so that none of this run is taken for the next one
    with Outbox(tmp / "state" / "outbox.db", max_bytes=8 * MB, gateway="gw-chaos", readonly=True) as ob:
        stream, top = ob.stream, ob.stats().last_seq
        acknowledged = set(range(1, top + 1)) - {row.seq for row in ob.peek(1_000_000, held=True)}

    def arrived() -> set[int]:
        return {b["seq"] for b in stored_messages(sub) if b.get("stream") == stream}
    assert wait_until(lambda: acknowledged <= arrived(), 60), sorted(acknowledged - arrived())[:5]
    return stored_messages(sub)[since:]


@pytest.mark.timeout(400)
def test_reinstalled_gateway_starts_a_new_stream_and_nothing_collides(tmp_path: Path, mosquitto, mqtt_subscriber):
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 200)
    first = run_agent(tmp_path / "a", mosquitto, sub, csv, since=0)
    again = run_agent(tmp_path / "a", mosquitto, sub, csv, since=len(stored_messages(sub)))  # restart
    fresh = run_agent(tmp_path / "b", mosquitto, sub, csv, since=len(stored_messages(sub)))  # new SD card
    everything = first + again + fresh
    assert all(isinstance(b.get("stream"), str) and b["stream"] for b in everything), \
        [b for b in everything if "stream" not in b][:3]
    kinds = {("readings" in b, b.get("kind")) for b in everything}
    assert (True, None) in kinds and (False, "command") in kinds  # telemetry and audit at least
    s_first, s_again, s_fresh = ({b["stream"] for b in run} for run in (first, again, fresh))
    assert s_first == s_again and len(s_first) == 1, "a restart must keep the stream"
    assert len(s_fresh) == 1 and s_fresh.isdisjoint(s_first), "a new state dir must start a new stream"
    assert min(b["seq"] for b in again) > max(b["seq"] for b in first)
    assert min(b["seq"] for b in fresh) == 1  # the new state dir starts again ...
    old_keys = {(b["gateway"], b["seq"]) for b in first + again}
    assert any((b["gateway"], b["seq"]) in old_keys for b in fresh)  # ... so (gateway, seq) collides
    # (gateway, stream, seq) does not: every distinct key is one body (copies after a reconnect are equal)
    bodies: dict[tuple, dict] = {}
    for b in everything:
        assert bodies.setdefault((b["gateway"], b["stream"], b["seq"]), b) == b
    fresh_keys = {k for k in bodies if k[1] in s_fresh}
    assert sum(len(bodies[k].get("readings", ())) for k in fresh_keys) == 200  # none taken for a duplicate
    assert sum(len(b.get("readings", ())) for b in bodies.values()) == 600  # 200 readings per run
