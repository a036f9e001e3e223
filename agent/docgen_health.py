"""The health document's JSON Schema (in docs/payload.schema.json) and its field table and example
(in docs/payloads.md), generated from the models in :mod:`agent.health_model`.

Only the generated parts are replaced: the other payload definitions and the prose stay as written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .health_model import (
    BufferHealth,
    ClockStatus,
    ConfigVersion,
    DeviceReport,
    Drops,
    HealthReport,
    Part,
    PipelineHealth,
    RefusedTopic,
    UplinkStats,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
SCHEMA_JSON = DOCS / "payload.schema.json"
PAYLOADS_MD = DOCS / "payloads.md"
BEGIN = "<!-- generated from agent/health.py by `python -m agent.docgen`: do not edit by hand -->"
END = "<!-- end of generated health -->"
_KEY_ORDER = ("$ref", "x-topic", "description", "type", "const", "minimum", "required", "properties",
              "additionalProperties")


def _tidy(node: Any) -> Any:
    """Pydantic's schema in the style of the hand-written definitions: no titles or defaults (every key
    is written), shared definitions linked, ``T | None`` as a type list, keys in a stable order."""
    if isinstance(node, list):
        return [_tidy(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: ({p: _tidy(v2) for p, v2 in v.items()} if k == "properties" else _tidy(v))
           for k, v in node.items() if k not in ("title", "default")}
    branches = out.get("anyOf")
    if branches and len(branches) == 2 and {"type": "null"} in branches:
        other = next(b for b in branches if b != {"type": "null"})
        if set(other) == {"type"} and isinstance(other["type"], str):
            del out["anyOf"]
            out["type"] = [other["type"], "null"]
    if isinstance(out.get("$ref"), str):  # a part of the health document
        out["$ref"] = out["$ref"].replace("#/$defs/", "#/$defs/health_")
    if "x-ref" in out:  # a definition shared with the other payloads
        out["$ref"] = f"#/$defs/{out.pop('x-ref')}"
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    return {k: out[k] for k in sorted(out, key=lambda k: (_KEY_ORDER.index(k) if k in _KEY_ORDER else 99, k))}


def _omitted_sections(schema: dict, model: type[Part]) -> None:
    """A section left out when absent (``exclude_if``) is never null on the wire."""
    for name, field in model.model_fields.items():
        prop = schema["properties"].get(name)
        if field.exclude_if is None or prop is None or "anyOf" not in prop:
            continue
        (kept,) = [b for b in prop.pop("anyOf") if b != {"type": "null"}]
        prop.update(kept)


def health_defs() -> dict[str, dict]:
    """``health`` and its parts, as entries of the payload schema's ``$defs``."""
    raw = HealthReport.model_json_schema(mode="serialization")
    parts = raw.pop("$defs")
    models: dict[str, type[Part]] = {m.__name__: m for m in (BufferHealth, Drops, UplinkStats, RefusedTopic,
                                                            PipelineHealth, DeviceReport, ClockStatus,
                                                            ConfigVersion)}
    _omitted_sections(raw, HealthReport)
    for name, schema in parts.items():
        _omitted_sections(schema, models[name])
    out = {"health": _tidy(raw)}
    out.update({f"health_{name}": _tidy(schema) for name, schema in sorted(parts.items())})
    return out


def render_schema(current: str | None = None) -> str:
    """docs/payload.schema.json with its health definitions regenerated in place."""
    doc = json.loads(current if current is not None else SCHEMA_JSON.read_text())
    generated = health_defs()
    defs: dict[str, Any] = {}
    for name, schema in doc["$defs"].items():
        if name == "health":
            defs.update(generated)
        elif name not in generated and not name.startswith("health_"):
            defs[name] = schema
    doc["$defs"] = defs
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# the example in docs/payloads.md: a gateway with one refused topic
HEALTH_EXAMPLE = HealthReport(
    gateway="gw-042", ts=1_767_226_030_000, uptime_s=86400.2,
    buffer=BufferHealth(depth=12, bytes=1_048_576, oldest_unsent_age_s=0.4, last_seq=18263,
                        stream="3f2c9a4e-6b1d-4e8a-9c57-0d2b7e6f1a90"),
    uplink=UplinkStats(connected=True, commands_subscribed=True, published=18263, acked=18251, inflight=12,
                       connects=3, reconnects=2, connect_failures=5, nacks=3, commands=4,
                       last_error="broker refused a message on edge/gw-042/telemetry/meter9: Not authorized",
                       refused_topics={"edge/gw-042/telemetry/meter9": RefusedTopic(nacks=3, reason="Not authorized",
                                                                                    retry_in_s=3.2)},
                       msgs_per_s=2.1, readings_per_s=204.0),
    pipeline=PipelineHealth(readings_in=1_840_000, messages_committed=18263),
    devices={"meter1": DeviceReport(up=True, polls_ok=17280, polls_failed=3, readings=1_840_000,
                                    last_ok_ms=1_767_226_029_000, last_error="DeviceTimeout: no answer in 2.0 s",
                                    latency_ms=38.2, latency_avg_ms=41.5)},
    clock=ClockStatus(synchronized=True, source="chrony", detail="chrony reports the clock synchronised"),
    config=ConfigVersion(version=42, sha256="9f86d081884c7d65"),
)


def _type(prop: dict) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[1]
        return {"epoch_ms": "integer (UTC epoch ms)", "gateway": "string"}.get(name, "object")
    if "const" in prop:
        return json.dumps(prop["const"])
    t = prop.get("type", "any")
    return " or ".join(t) if isinstance(t, list) else t


def _rows(schema: dict, defs: dict, prefix: str) -> list[str]:
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        note = "" if name in required else " Optional."
        desc = (prop.get("description", "") + note).replace("|", "\\|")
        rows.append(f"| `{path}` | {_type(prop)} | {desc.strip()} |")
        ref = prop.get("$ref", "")
        values = prop.get("additionalProperties")
        if ref.startswith("#/$defs/health_"):
            rows += _rows(defs[ref.rsplit("/", 1)[1]], defs, f"{path}.")
        elif isinstance(values, dict) and values.get("$ref", "").startswith("#/$defs/health_"):
            rows += _rows(defs[values["$ref"].rsplit("/", 1)[1]], defs, f"{path}.<name>.")
    return rows


def _example_json(value: Any, col: int = 0, width: int = 105) -> str:
    """Compact JSON filled to ``width`` columns (``col`` is where it starts); an object too wide for
    one line continues its keys on the next lines, aligned after its brace."""
    flat = json.dumps(value, ensure_ascii=False)
    if col + len(flat) <= width or not isinstance(value, dict) or not value:
        return flat
    lines, line = [], "{"
    for i, (k, v) in enumerate(value.items()):
        key = f"{json.dumps(k, ensure_ascii=False)}: "
        end = "}" if i == len(value) - 1 else ","
        at = len(line) + (0 if lines else col)  # the column where the line ends
        if i:  # try it on the current line
            item = key + _example_json(v, at + 1 + len(key), width) + end
            if "\n" not in item and at + 1 + len(item) <= width:
                line += " " + item
                continue
            lines.append(line)
            line = " " * (col + 1)  # a new line, after the brace
            at = col + 1
        line += key + _example_json(v, at + len(key), width) + end
    lines.append(line)
    return "\n".join(lines)


def health_section() -> str:
    defs = health_defs()
    table = ["| field | type | meaning |", "| --- | --- | --- |", *_rows(defs["health"], defs, "")]
    example = _example_json(HEALTH_EXAMPLE.to_wire())
    return "\n".join([BEGIN, "", *table, "", "<!-- schema: health -->", "```json", example, "```", END])


def render_payloads_md(current: str | None = None) -> str:
    """docs/payloads.md with the generated health table and example replaced."""
    text = current if current is not None else PAYLOADS_MD.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + health_section() + text[end:]
