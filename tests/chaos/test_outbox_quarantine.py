"""A corrupt outbox under the real agent: `edge-agent run` sets it aside, says so once in its log and
on the event topic, keeps running, and its new seqs continue above every seq published before."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from agent.store.outbox import Outbox

from .agent_proc import AgentProcess, agent_config, telemetry_index, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(180)


def test_corrupt_outbox_is_quarantined_and_seq_never_reused(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 200_000)
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=20, poll=0.05)
    log = tmp_path / "agent.log"
    agent = AgentProcess(cfg, log).start()
    try:
        assert wait_until(lambda: len(telemetry_index(sub.snapshot())[0]) >= 50, 90), agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    db = tmp_path / "state" / "outbox.db"
    with Outbox(db, max_bytes=64 * 1024 * 1024, gateway="gw-chaos", readonly=True) as ob:
        acknowledged = set(range(1, ob.stats().last_seq + 1)) - {row.seq for row in ob.peek(1_000_000, held=True)}
    # the last messages published at shutdown: wait until every acknowledged seq is upstream
    assert wait_until(lambda: acknowledged <= set(telemetry_index(sub.snapshot())[0]), 30)
    before = set(telemetry_index(sub.snapshot())[0])
    garbage = b"\xde\xad\xbe\xef garbage where the outbox was " * 2000
    db.write_bytes(garbage)

    agent = AgentProcess(cfg, log).start()
    try:
        def quarantine_events() -> list[dict]:
            return [orjson.loads(m.payload) for m in sub.snapshot()
                    if m.topic.endswith("/event") and b"outbox_quarantined" in m.payload]
        assert wait_until(lambda: quarantine_events() and len(telemetry_index(sub.snapshot())[0]) > len(before) + 50,
                          90), agent.log_tail()
        time.sleep(0.5)
        assert agent.proc.poll() is None, agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    event, = quarantine_events()
    moved = Path(event["moved_to"])
    assert moved.parent == db.parent and moved.name.startswith("outbox.db.corrupt-")
    assert moved.read_bytes() == garbage
    assert event["path"] == str(db) and event["resumed_seq"] >= max(before)
    by_seq, _, conflicts = telemetry_index(sub.snapshot())
    assert conflicts == [], "a seq was published with two different bodies"
    assert min(set(by_seq) - before) > max(before)
    text = log.read_text()
    assert text.count("was corrupt") == 1 and "Traceback" not in text
