"""Pipeline commits: raw telemetry in ~100-reading messages, and a bad message never blocks the rest."""

from __future__ import annotations

import numpy as np

from agent.config import load_config_text
from agent.model import Batch, MetricSpec
from agent.pipeline import Pipeline
from agent.series import LatestValues, SeriesTable
from agent.store.outbox import Outbox, Pending, Priority
from agent.uplink.topics import Topics


def make(tmp_path, per_message=100):
    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nreadings_per_message = {per_message}\n', env={})
    series = SeriesTable()
    series.add_device("m", [MetricSpec("v", "V"), MetricSpec("p", "W")])
    outbox = Outbox(tmp_path / "o.db", max_bytes=cfg.store.max_bytes, gateway="gw")
    pipe = Pipeline(config=cfg, series=series, outbox=outbox, topics=Topics("edge", "gw"), latest=LatestValues(len(series)))
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
    assert [b["seq"] for b in bodies] == [1, 2, 3] and {r.topic for r in rows} == {"edge/gw/telemetry/m"}
    assert bodies[0]["readings"][1] == {"ts": 1_700_000_000_001, "metric": "p", "value": 1.5, "unit": "W", "q": 0}
    assert pipe.latest.get(1)[0] == (n - 1) * 1.5


def test_a_malformed_message_is_dropped_and_the_rest_still_committed(tmp_path) -> None:
    pipe, outbox = make(tmp_path)
    pipe.submit_message(Pending(Priority.EVENT, "edge/gw/event", {"kind": "ok-1"}))
    pipe.submit_message(Pending(Priority.EVENT, "edge/gw/event", {"kind": {1, 2}}))  # a set: not JSON
    pipe.submit_message(Pending(Priority.AUDIT, "edge/gw/audit", {"kind": "ok-2"}))
    assert pipe.cycle() == 0 and pipe.stats.commit_errors == 1
    assert pipe.cycle() == 2
    assert [r.topic for r in outbox.peek(10)] == ["edge/gw/event", "edge/gw/audit"]


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
