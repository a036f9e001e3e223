"""The one place that reads the health document (``agent.health.build_health``) for the metrics
endpoint: every figure exported is picked here, by its key, into Prometheus families.

A health figure that is missing (an older or partial document) is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..health_parts import HealthReport
from .exposition import Family

PREFIX = "edge_agent_"


def _get(doc: Any, *path: str) -> Any:
    """``doc[path...]``, reading attributes too (a typed health document works the same way)."""
    for key in path:
        if doc is None:
            return None
        doc = doc.get(key) if isinstance(doc, Mapping) else getattr(doc, key, None)
    return doc


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    return float(v) if isinstance(v, int | float) else None


def _as_dict(v: Any) -> Mapping[str, Any]:
    if isinstance(v, Mapping):
        return v
    if hasattr(v, "__dataclass_fields__"):
        return {k: getattr(v, k) for k in v.__dataclass_fields__}
    return {}


def families_from_health(doc: HealthReport | Mapping[str, Any]) -> list[Family]:
    """The exported families, from the agent's health report or its wire form (a dict)."""
    if isinstance(doc, HealthReport) or hasattr(doc, "__pydantic_fields__"):  # the agent's, or one read back
        doc = doc.to_wire()
    fams: list[Family] = []

    def fam(name: str, type_: str, help_: str) -> Family:
        f = Family(PREFIX + name, type_, help_)
        fams.append(f)
        return f

    def single(name: str, type_: str, help_: str, *path: str, scale: float = 1.0) -> None:
        v = _num(_get(doc, *path))
        fam(name, type_, help_).add(None if v is None else v * scale)

    gateway = str(_get(doc, "gateway") or "")
    fam("info", "gauge", "Constant 1, labelled with the gateway id.").add(1, gateway=gateway)
    single("uptime_seconds", "gauge", "Seconds since the agent started.", "uptime_s")

    single("buffer_depth_messages", "gauge", "Messages in the outbox not yet acknowledged by the broker.",
           "buffer", "depth")
    single("buffer_bytes", "gauge", "Bytes the outbox takes on disk.", "buffer", "bytes")
    single("buffer_oldest_unsent_age_seconds", "gauge", "Age of the oldest message not yet acknowledged (0 when none).",
           "buffer", "oldest_unsent_age_s")
    drops = fam("buffer_dropped_messages_total", "counter",
                "Messages dropped to keep the outbox under its disk cap, by retention priority.")
    for priority, n in sorted(_as_dict(_get(doc, "buffer", "drops")).items()):
        drops.add(_num(n), priority=str(priority))

    single("uplink_connected", "gauge", "1 while connected to the broker.", "uplink", "connected")
    single("uplink_published_messages_total", "counter", "Messages published to the broker.", "uplink", "published")
    single("uplink_acked_messages_total", "counter", "Messages the broker acknowledged (PUBACK).", "uplink", "acked")
    single("uplink_inflight_messages", "gauge", "Messages published and awaiting PUBACK.", "uplink", "inflight")
    single("uplink_reconnects_total", "counter", "Reconnections to the broker after the first connection.",
           "uplink", "reconnects")
    single("uplink_publish_errors_total", "counter", "Publishes the MQTT client refused.", "uplink", "publish_errors")
    single("uplink_publish_rate_messages_per_second", "gauge", "Messages acknowledged per second, recently.",
           "uplink", "msgs_per_s")
    single("uplink_publish_rate_readings_per_second", "gauge", "Readings acknowledged per second, recently.",
           "uplink", "readings_per_s")

    single("pipeline_readings_total", "counter", "Readings the pipeline received from drivers.", "pipeline", "readings_in")
    single("pipeline_commit_errors_total", "counter", "Failed commits to the outbox.", "pipeline", "commit_errors")
    single("pipeline_held_messages", "gauge", "Messages held in memory because the outbox could not take them.",
           "pipeline", "held")
    single("pipeline_held_bytes", "gauge", "Bytes held in memory because the outbox could not take them.",
           "pipeline", "held_bytes")

    sync = _get(doc, "clock", "synchronized")
    if isinstance(sync, bool):
        fam("clock_synchronized", "gauge", "1 when the system clock is synchronised (NTP).").add(sync)

    devices = _as_dict(_get(doc, "devices"))
    per_device = [
        ("device_up", "gauge", "1 while the device's last poll succeeded.", "up", 1.0),
        ("device_stale", "gauge", "1 when the device has had no good poll for its stale time.", "stale", 1.0),
        ("device_poll_latency_seconds", "gauge", "Duration of the device's last poll.", "latency_ms", 1e-3),
        ("device_poll_latency_avg_seconds", "gauge", "Moving average of the device's poll duration.",
         "latency_avg_ms", 1e-3),
        ("device_polls_ok_total", "counter", "Successful polls of the device.", "polls_ok", 1.0),
        ("device_polls_failed_total", "counter", "Failed polls of the device.", "polls_failed", 1.0),
        ("device_readings_total", "counter", "Readings the device delivered.", "readings", 1.0),
    ]
    for name, type_, help_, key, scale in per_device:
        f = fam(name, type_, help_)
        for device in sorted(devices):
            v = _num(_get(devices[device], key))
            f.add(None if v is None else round(v * scale, 9), device=str(device))  # ms -> s without 0.000179999...
    return fams
