"""Promise 1 end to end: the real agent process, a real mosquitto, a subscriber upstream.

Broker restarts and SIGKILLs of the agent mid-stream must lose nothing that was committed:
the subscriber sees every seq from 1 to the last one, every reading at least once, and any
duplicate carries the same seq with the same payload.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.outbox import Outbox

from .agent_proc import AgentProcess, agent_config, telemetry_index, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(240)


def expected_readings(device: str, values: list[float]) -> set[tuple[str, int, float]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return {(device, int((t0 + timedelta(seconds=60 * i)).timestamp() * 1000), v) for i, v in enumerate(values)}


def last_seq(state: Path) -> int:
    with Outbox(state / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw-chaos") as ob:
        return ob.stats().last_seq


def still_queued(state: Path) -> set[int]:
    """Seqs committed but not yet acknowledged (e.g. the last commit at shutdown): kept, not lost."""
    with Outbox(state / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw-chaos") as ob:
        return {row.seq for row in ob.peek(1_000_000)}


def unaccounted(sub, state: Path) -> set[int]:
    """Seqs committed (1 .. the last) neither seen upstream nor still queued in the outbox."""
    by_seq, _, _ = telemetry_index(sub.snapshot())
    return set(range(1, last_seq(state) + 1)) - set(by_seq) - still_queued(state)


def wait_accounted(sub, state: Path, timeout: float = 30) -> set[int]:
    """After the agent stopped: wait until what it published at shutdown has arrived; the seqs still
    unaccounted for (none, unless some were lost or dropped)."""
    wait_until(lambda: not unaccounted(sub, state), timeout, interval=0.5)
    return unaccounted(sub, state)


def assert_nothing_lost(sub, state: Path, expected: set, *, timeout: float = 90) -> dict[int, bytes]:
    def complete() -> bool:
        by_seq, readings, _ = telemetry_index(sub.snapshot())
        return expected <= readings
    assert wait_until(complete, timeout), "not every reading arrived upstream"
    by_seq, readings, conflicts = telemetry_index(sub.snapshot())
    assert conflicts == [], "a seq arrived with two different payloads"
    return by_seq


def test_broker_restarts_mid_stream_lose_nothing(tmp_path: Path, mosquitto_factory, mqtt_subscriber) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw-chaos/#", persistent=True)
    csvs = {name: tmp_path / f"{name}.csv" for name in ("meter-a", "meter-b")}
    expected = set()
    for name, path in csvs.items():
        expected |= expected_readings(name, write_replay_csv(path, 6000))
    agent = AgentProcess(agent_config(tmp_path, broker, csvs, rows_per_read=40, poll=0.05), tmp_path / "agent.log").start()
    try:
        for _ in range(3):  # three outages while the replay is still streaming
            time.sleep(1.2)
            broker.stop()
            time.sleep(1.0)
            broker.start()
        by_seq = assert_nothing_lost(sub, tmp_path / "state", expected)
        assert agent.proc.poll() is None, agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    missing = wait_accounted(sub, tmp_path / "state")  # the last commit at shutdown may still be on its way
    assert missing == set(), f"committed seqs neither delivered nor queued: {sorted(missing)[:5]}"
    by_seq, _, conflicts = telemetry_index(sub.snapshot())
    assert conflicts == []
    assert sorted(by_seq)[:3] == [1, 2, 3]


def test_sigkill_of_the_agent_mid_stream_loses_nothing_committed(tmp_path: Path, mosquitto_factory, mqtt_subscriber) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw-chaos/#", persistent=True)
    csv = tmp_path / "meter.csv"
    expected = expected_readings("meter", write_replay_csv(csv, 8000))
    cfg = agent_config(tmp_path, broker, {"meter": csv}, rows_per_read=50, poll=0.05)
    rng = random.Random(42)
    log = tmp_path / "agent.log"
    for _ in range(3):
        agent = AgentProcess(cfg, log).start()
        time.sleep(rng.uniform(1.0, 2.5))
        agent.kill9()
    # while the agent is dead, take the broker down too: the backlog must survive both
    broker.stop()
    agent = AgentProcess(cfg, log).start()
    time.sleep(1.0)
    broker.start()
    try:
        assert_nothing_lost(sub, tmp_path / "state", expected, timeout=120)
        assert wait_until(lambda: outbox_depth(tmp_path / "state") == 0, 30)
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    missing = wait_accounted(sub, tmp_path / "state")
    assert missing == set(), f"{len(missing)} committed messages never arrived, e.g. {sorted(missing)[:5]}"
    assert telemetry_index(sub.snapshot())[2] == []


def outbox_depth(state: Path) -> int:
    """Read while the agent runs: read-only (a second writer on a running agent's outbox is refused)."""
    with Outbox(state / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw-chaos", readonly=True) as ob:
        return ob.stats().depth


def test_disk_cap_drops_oldest_raw_first_and_counts_it(tmp_path: Path, mosquitto_factory, mqtt_subscriber) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw-chaos/#", persistent=True)
    broker.stop()  # the uplink is down for the whole fill
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 60000, step_s=1)  # a 1 Hz meter: one aggregate per 60 readings
    cap = 4 * 1024 * 1024
    cfg = agent_config(tmp_path, broker, {"meter": csv}, rows_per_read=100, poll=0.01, max_bytes=cap)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    db = tmp_path / "state" / "outbox.db"
    sizes = []
    try:
        def drained_source() -> bool:
            sizes.append(sum(f.stat().st_size for f in db.parent.glob("outbox.db*")))
            return (tmp_path / "state" / "status.json").exists() and _status(tmp_path)["devices"]["meter"]["readings"] >= 60000
        assert wait_until(drained_source, 90), agent.log_tail()
        wait_until(lambda: _status(tmp_path)["buffer"]["drops"]["raw"] > 0, 30)  # a health period or more
        status = _status(tmp_path)
        drops = status["buffer"]["drops"]
        assert drops["raw"] > 0, status["buffer"]
        assert max(sizes) <= cap * 1.1, f"outbox (db + wal + shm) grew to {max(sizes)} bytes with a {cap} cap"
        broker.start()
        assert wait_until(lambda: outbox_depth(tmp_path / "state") == 0, 60), agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    top = last_seq(tmp_path / "state")
    # one publisher, in order: once the last seq is upstream (or still queued), so is all that went before
    wait_until(lambda: top in telemetry_index(sub.snapshot())[0] or top in still_queued(tmp_path / "state"), 30)
    missing = unaccounted(sub, tmp_path / "state")
    by_seq, readings, conflicts = telemetry_index(sub.snapshot())
    # every missing seq is a counted raw drop (a row evicted while in flight may still have arrived,
    # so drops can exceed what is missing, never the other way round), and the oldest went first
    with Outbox(tmp_path / "state" / "outbox.db", max_bytes=cap, gateway="gw-chaos") as ob:
        final = ob.stats().drops
    assert 0 < len(missing) <= final["raw"]
    assert final["agg"] == final["event"] == final["audit"] == 0
    assert min(missing) == 1 and max(by_seq) > max(missing)


def _status(tmp: Path) -> dict:
    import json
    return json.loads((tmp / "state" / "status.json").read_text())
