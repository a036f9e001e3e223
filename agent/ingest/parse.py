"""Gateway messages as the ingest sees them: topic + body -> one typed record, or a reason to reject.

Pure functions (no database, no broker). The body carries ``gateway``, ``seq`` and ``stream`` (the
outbox identity); a body without ``stream`` comes from a gateway older than that field and is keyed
with ``stream = ""``. ``health`` and ``status`` are not from the outbox (no seq) and are kept as the
latest per gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

Key = tuple[str, str, int]  # (gateway, stream, seq)


class Rejected(ValueError):
    """A message the ingest cannot store as data; it goes to the ``rejected`` table with this reason."""


@dataclass(slots=True)
class Message:
    key: Key
    kind: str  # telemetry, agg, energy, event, audit, result, other
    topic: str
    body: dict[str, Any]
    data_ts: datetime | None = None
    readings: list[tuple] = field(default_factory=list)  # rows for the readings table
    aggregates: list[tuple] = field(default_factory=list)
    energy: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


@dataclass(slots=True)
class Status:
    gateway: str
    kind: str  # status or health
    body: dict[str, Any]


def ms(value: Any, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(f"{what} is not an epoch-millisecond number: {value!r}")
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise Rejected(f"{what} {value!r} is out of range: {e}") from None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(body: dict, name: str, *, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise Rejected(f"'{name}' is missing or not a string")
    return value


def topic_kind(topic: str, prefix: str) -> tuple[str, str]:
    """(gateway, kind) named by a topic ``{prefix}/{gateway}/...``; kind is the level after the gateway
    (``cmd/{device}/result`` is ``result``)."""
    parts = topic.split("/")
    head = prefix.split("/")
    if parts[:len(head)] != head or len(parts) < len(head) + 2:
        raise Rejected(f"topic {topic!r} is not under {prefix}/<gateway>/")
    gateway, rest = parts[len(head)], parts[len(head) + 1:]
    if rest[0] == "cmd":
        return gateway, "result" if len(rest) == 3 and rest[2] == "result" else "command"
    return gateway, rest[0]


def parse(topic: str, payload: bytes, *, prefix: str = "edge") -> Message | Status | None:
    """A record for one delivery; None for a message that is not for the ingest (a command to a
    gateway, an empty retained-message delete). Raises Rejected with the reason otherwise."""
    topic_gateway, kind = topic_kind(topic, prefix)
    if kind == "command" or not payload:
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Rejected(f"body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise Rejected(f"body is a JSON {type(body).__name__}, not an object")
    gateway = _text(body, "gateway")
    if gateway != topic_gateway:
        raise Rejected(f"body gateway {gateway!r} does not match the topic's {topic_gateway!r}")
    if kind in ("status", "health"):
        return Status(gateway, kind, body)
    seq = body.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise Rejected(f"'seq' is missing or not a non-negative integer: {seq!r}")
    stream = _text(body, "stream", default="")
    msg = Message((gateway, stream, seq), kind, topic, body)
    if kind == "telemetry":
        _telemetry(msg)
    elif kind == "agg":
        _agg(msg)
    else:
        msg.kind = kind if kind in ("event", "audit", "result") else "other"
        ts = ms(body["ts"], "'ts'") if "ts" in body else datetime.now(UTC)
        msg.data_ts = ts
        msg.events.append((ts, gateway, stream, seq, msg.kind, topic, payload.decode()))
    return msg


def _telemetry(msg: Message) -> None:
    gateway, stream, seq = msg.key
    device = _text(msg.body, "device")
    rows = msg.body.get("readings")
    if not isinstance(rows, list):
        raise Rejected("'readings' is missing or not a list")
    newest = None
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise Rejected(f"readings[{i}] is not an object")
        ts = ms(r.get("ts"), f"readings[{i}].ts")
        q = r.get("q", 0)
        if isinstance(q, bool) or not isinstance(q, int):
            raise Rejected(f"readings[{i}].q is not an integer: {q!r}")
        metric, unit = r.get("metric"), r.get("unit", "")
        if not isinstance(metric, str) or not isinstance(unit, str):
            raise Rejected(f"readings[{i}]: metric/unit are not strings")
        msg.readings.append((ts, gateway, stream, seq, device, metric, _num(r.get("value")), unit, q))
        newest = ts if newest is None or ts > newest else newest
    msg.data_ts = newest


def _agg(msg: Message) -> None:
    gateway, stream, seq = msg.key
    body = msg.body
    device = _text(body, "device")
    start, end = ms(body.get("start"), "'start'"), ms(body.get("end"), "'end'")
    window = _text(body, "window", default="")
    raw = orjson.dumps(body).decode()
    msg.data_ts = end
    if body.get("kind") == "energy":
        msg.kind = "energy"
        msg.energy.append((start, end, gateway, stream, seq, device, window, _num(body.get("kwh")),
                           _num(body.get("cost")), body.get("currency"), _num(body.get("kgco2e")), raw))
        return
    rows = body.get("aggregates")
    if not isinstance(rows, list):
        raise Rejected("'aggregates' is missing or not a list")
    for i, a in enumerate(rows):
        if not isinstance(a, dict) or not isinstance(a.get("metric"), str):
            raise Rejected(f"aggregates[{i}] is not an object with a metric")
        count = a.get("count")
        msg.aggregates.append((start, end, gateway, stream, seq, device, window, a["metric"], a.get("unit"),
                               count if isinstance(count, int) else None, _num(a.get("min")),
                               _num(a.get("max")), _num(a.get("mean")), _num(a.get("delta")),
                               orjson.dumps(a).decode()))
