"""docs/payload.schema.json against real bodies (payload helpers + outbox, status, health) and the
examples in docs/payloads.md, so the documentation cannot drift from what the gateway sends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.schema import MqttConfig
from agent.health import (
    ClockStatus,
    DeviceReport,
    HealthReport,
    PipelineHealth,
    RefusedTopic,
    UplinkStats,
    build_health,
)
from agent.model import Quality
from agent.store import Outbox, Pending, Priority
from agent.uplink.connection import status_body
from agent.uplink.mqtt import Uplink
from agent.uplink.payload import TelemetryEncoder, chunk_bodies, reading_rows
from agent.uplink.topics import Topics

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA = json.loads((DOCS / "payload.schema.json").read_text())
TOPICS = Topics("edge", "gw1")


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                                            "$ref": f"#/$defs/{name}"})


def errors(name: str, body: object) -> list[str]:
    return [e.message for e in validator(name).iter_errors(body)]


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def doc_examples() -> list[tuple[str, dict]]:
    text = (DOCS / "payloads.md").read_text()
    return [(m.group(1), json.loads(m.group(2)))
            for m in re.finditer(r"<!-- schema: (\w+) -->\s*```json\n(.*?)```", text, re.S)]


def test_every_documented_example_matches_the_schema() -> None:
    examples = doc_examples()
    assert {name for name, _ in examples} >= {"telemetry", "agg", "event", "command", "command_result", "audit",
                                              "health", "status"}
    for name, body in examples:
        assert errors(name, body) == [], (name, body)
        if name not in ("command", "health", "status"):  # outbox messages may be any of these
            assert jsonschema.Draft202012Validator(SCHEMA).is_valid(body)


def test_quality_table_lists_every_bit() -> None:
    text = (DOCS / "payloads.md").read_text()
    for q in Quality:
        if q is Quality.OK:
            continue
        bit = q.value.bit_length() - 1
        assert re.search(rf"\| {bit} \| {q.value} \| {q.name.lower()} \|", text), f"{q.name} missing from docs"


def telemetry_bodies(ts, values, quality) -> list[dict]:
    """Bodies as the pipeline builds them (columns straight to JSON)."""
    n = len(values)
    series = np.arange(n, dtype=np.int32) % 2
    enc = TelemetryEncoder(["voltage", "energy"], ["V", "kWh"])
    return [body for body, _ in enc.bodies("meter1", np.asarray(ts, np.int64), series, np.asarray(values, np.float64),
                                           np.asarray(quality, np.uint32), 3)]


NAMES, UNITS = ["voltage", 'odd "name" \\ % ñ', "energy"], ["V", "°C", ""]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**62, 2**62), st.integers(0, 2), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(0, 2**32 - 1)), min_size=0, max_size=30), st.integers(1, 7))
def test_columnar_encoding_is_byte_identical_to_one_dict_per_reading(readings, per_message) -> None:
    ts, series, values, quality = (np.array(c, d) for c, d in zip(
        zip(*readings, strict=True) if readings else ([],) * 4, (np.int64, np.int32, np.float64, np.uint32), strict=True))
    reference = [orjson.dumps(b) for b in chunk_bodies("m1", reading_rows(ts, series, values, quality, NAMES, UNITS),
                                                        per_message)]
    encoded = TelemetryEncoder(NAMES, UNITS).bodies("m1", ts, series, values, quality, per_message)
    assert [orjson.dumps(b) for b, _ in encoded] == reference
    assert [n for _, n in encoded] == [len(orjson.loads(b)["readings"]) for b in reference]


def stored(outbox: Outbox, items: list[Pending]) -> list[dict]:
    after = outbox.peek(1_000_000)[-1].rowid if outbox.stats().depth else 0
    outbox.append(items)
    return [orjson.loads(r.payload) for r in outbox.peek(10_000, after_rowid=after)]


@pytest.fixture
def outbox(tmp_path: Path):
    ob = Outbox(tmp_path / "o.db", max_bytes=8 * 1024 * 1024, gateway="gw1")
    yield ob
    ob.close()


def test_real_telemetry_from_the_outbox_is_valid(outbox: Outbox) -> None:
    bodies = telemetry_bodies([1_767_225_600_000 + i for i in range(7)],
                              [230.1, float("nan"), 1.5, float("inf"), -2.0, 0.0, 1e300],
                              [0, Quality.STALE, Quality.CLOCK_UNSYNCED | Quality.SPIKE, 0, 0, 0, 0])
    out = stored(outbox, [Pending(Priority.RAW, TOPICS.telemetry("meter1"), b) for b in bodies])
    assert len(out) == 3 and [b["seq"] for b in out] == [1, 2, 3]
    for b in out:
        assert errors("telemetry", b) == []
    assert out[0]["readings"][1]["value"] is None and out[0]["readings"][1]["q"] == 16


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2**53), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(0, 2**32 - 1)), min_size=1, max_size=20))
def test_any_reading_encodes_to_a_valid_body(outbox: Outbox, readings) -> None:
    ts, values, quality = zip(*readings, strict=True)
    bodies = telemetry_bodies(ts, values, quality)
    for b in stored(outbox, [Pending(Priority.RAW, TOPICS.telemetry("meter1"), b) for b in bodies]):
        assert errors("telemetry", b) == []


def test_real_status_and_health_bodies_are_valid(outbox: Outbox) -> None:
    for state in ("online", "offline"):
        assert errors("status", orjson.loads(status_body("gw1", state, 1_767_225_600_000))) == []
    outbox.append([Pending(Priority.RAW, "t/x", {"v": 1})])
    uplink = Uplink(MqttConfig(host="127.0.0.1"), "gw1", outbox)
    body = build_health(gateway="gw1", started_mono=0.0, now_ms=1_767_225_600_000, outbox_stats=outbox.stats(),
                        uplink_stats=uplink.stats(), pipeline_stats=PipelineHealth(), pollers=[], processing=None,
                        buses=None)
    assert errors("health", body.to_wire()) == []


def test_health_schema_and_docs_are_generated_from_the_health_models() -> None:
    from agent.docgen_health import render_payloads_md, render_schema

    stale = "is stale: run `python -m agent.docgen`"
    assert (DOCS / "payload.schema.json").read_text() == render_schema(), f"docs/payload.schema.json {stale}"
    assert (DOCS / "payloads.md").read_text() == render_payloads_md(), f"docs/payloads.md {stale}"
    for name in HealthReport.model_fields:  # every key of the document is in the field table
        assert f"| `{name}` |" in (DOCS / "payloads.md").read_text(), name
    for name in UplinkStats.model_fields:
        assert f"| `uplink.{name}` |" in (DOCS / "payloads.md").read_text(), name


def test_a_full_health_report_is_valid_and_reads_back_the_same() -> None:
    uplink = UplinkStats(connected=True, refused_topics={"t/a": RefusedTopic(nacks=2, reason="Not authorized")},
                         last_error=None)
    report = HealthReport(gateway="gw1", ts=5, uplink=uplink, devices={"m": DeviceReport(up=True, diagnostics={"crc": 1})},
                          clock=ClockStatus(synchronized=None), processing={"windows": 2}, buses={"rs485": {"opens": 1}})
    wire = orjson.loads(orjson.dumps(report.to_wire()))
    assert errors("health", wire) == []
    assert wire["uplink"]["last_error"] is None and wire["clock"]["synchronized"] is None
    assert HealthReport.model_validate(wire) == report
    bare = HealthReport(gateway="gw1", ts=5).to_wire()  # optional sections are left out, never null
    assert errors("health", bare) == [] and not {"uplink", "clock", "processing", "buses"} & set(bare)
    assert "diagnostics" not in HealthReport(devices={"m": DeviceReport()}).to_wire()["devices"]["m"]
    assert errors("health", {**wire, "uplink": None}), "a null section must not validate"


def test_outbox_stamps_gateway_and_seq_on_every_kind(outbox: Outbox) -> None:
    agg = {"v": 1, "device": "m1", "window": "1m", "start": 0, "end": 60_000,
           "aggregates": [{"metric": "p", "unit": "W", "count": 0, "min": None, "max": None, "gaps": 1}]}
    event = {"v": 1, "kind": "anomaly_start", "device": "m1", "metric": "p", "ts": 5, "score": 6.5, "value": 1.0}
    result = {"id": None, "status": "refused", "device": "m1", "ts": 5, "code": "malformed", "reason": "x"}
    audit = {**result, "kind": "command", "source": "mqtt"}
    out = stored(outbox, [Pending(Priority.AGG, TOPICS.agg("m1"), agg), Pending(Priority.EVENT, TOPICS.event, event),
                          Pending(Priority.EVENT, TOPICS.command_result("m1"), result),
                          Pending(Priority.AUDIT, TOPICS.audit, audit)])
    for name, body in zip(["agg", "event", "command_result", "audit"], out, strict=True):
        assert errors(name, body) == [], name
    # the outbox stamps the caller's dict too; without the stamp a body is not a valid message
    assert agg["seq"] == 1 and agg["gateway"] == "gw1" and agg["stream"] == outbox.stream
    assert any("stream" in e for e in errors("agg", {k: v for k, v in agg.items() if k != "stream"}))
    unstamped = {k: v for k, v in agg.items() if k not in ("seq", "gateway")}
    assert any("seq" in e for e in errors("agg", unstamped))


@pytest.mark.parametrize(("name", "body", "why"), [
    ("telemetry", {"v": 1, "gateway": "g", "seq": 1, "device": "d",
                   "readings": [{"ts": 1, "metric": "m", "value": "high", "unit": "", "q": 0}]}, "value"),
    ("telemetry", {"v": 1, "gateway": "g", "device": "d",
                   "readings": [{"ts": 1, "metric": "m", "value": 1, "unit": "", "q": 0}]}, "seq"),
    ("telemetry", {"v": 1, "gateway": "g", "seq": 1, "device": "d",
                   "readings": [{"ts": 1.5, "metric": "m", "value": 1, "unit": "", "q": 0}]}, "ts"),
    ("telemetry", {"v": 1, "gateway": "g", "seq": 1, "device": "d",
                   "readings": [{"ts": 1, "metric": "m", "value": 1, "unit": "", "q": -1}]}, "q"),
    ("status", {"state": "maybe", "ts": 1}, "state"),
    ("command", {"id": "a", "action": "stop", "force": True}, "force"),
    ("command", {"id": "has space", "action": "stop"}, "id"),
    ("event", {"gateway": "g", "seq": 3, "device": "d"}, "kind"),
])
def test_schema_rejects_bad_bodies(name: str, body: dict, why: str) -> None:
    assert errors(name, body), f"{name} body with bad {why} was accepted"


def strict(node: object) -> object:
    """A schema with every object in it closed (unevaluatedProperties false): a key the code sends that the
    schema does not declare fails."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in out:
            out["unevaluatedProperties"] = False
        return out
    return [strict(v) for v in node] if isinstance(node, list) else node


def test_real_anomaly_events_declare_every_key_and_signal(tmp_path: Path, outbox: Outbox) -> None:
    """Anomaly events as the processor raises them (one per signal that can start one), stamped by the
    outbox, validate against the schema with no undeclared key; the schema's signals are the code's."""
    from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
    from agent.driver import Clock
    from agent.model import Batch, MetricSpec
    from agent.processing import ProcessingConfig, Processor
    from agent.processing.events import SIGNAL
    from agent.series import SeriesTable

    item = SCHEMA["$defs"]["event"]["properties"]["metrics"]["items"]["properties"]
    assert sorted(item["signal"]["enum"]) == sorted(SIGNAL.values())

    class Meter(DeviceConfig):
        pass

    cfg = AgentConfig(gateway=GatewayConfig(id="gw1"), devices=(Meter(name="m1", type="meter", poll_interval=1.0),),
                      processing=ProcessingConfig())
    table = SeriesTable()
    table.add_device("m1", [MetricSpec("voltage", "V"), MetricSpec("power", "W")])
    proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
    t0, n = 1_714_957_200_000, 2000
    rng = np.random.default_rng(3)
    v = np.empty(2 * n)
    v[0::2] = 230 + rng.normal(0, 0.5, n)
    v[1::2] = 3600 + rng.normal(0, 20, n)
    v[2 * 1500] = 260.0  # a spike, then the power stops varying
    v[2 * 1600 + 1::2] = 3600.0
    batch = Batch.from_columns(np.tile(np.array([0, 1], np.int32), n), np.repeat(t0 + np.arange(n) * 1000, 2), v)
    events = proc.process(batch, t0 + n * 1000).events
    starts = [e for e in events if e["kind"] == "anomaly_start"]
    assert starts and any(e["kind"] == "anomaly_end" for e in events)
    out = stored(outbox, [Pending(Priority.EVENT, TOPICS.event, e) for e in events])
    defs = {**SCHEMA["$defs"], "event": strict(SCHEMA["$defs"]["event"])}  # the envelope stays open: allOf
    closed = jsonschema.Draft202012Validator({"$schema": SCHEMA["$schema"], "$defs": defs, "$ref": "#/$defs/event"})
    for body in out:
        assert [e.message for e in closed.iter_errors(body)] == [], body
    assert {m["signal"] for e in out if e["kind"] == "anomaly_start" for m in e["metrics"]} <= set(SIGNAL.values())
    assert errors("event", {**out[0], "metrics": [{**out[0]["metrics"][0], "signal": "hunch"}]}), "an unknown signal"
