"""Self-metrics: one health document, published on the health topic and written to
``{state_dir}/status.json`` for ``edge-agent status``.

The document is typed (:class:`HealthReport` and its parts): the agent builds it from these models,
``edge-agent status`` reads the status file back into them, and the health schema in
docs/payload.schema.json and the field table in docs/payloads.md are generated from them
(``python -m agent.docgen``). Every field has a default so that a report with missing parts still
parses; the agent always writes every field (only the sections marked optional may be absent).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

if TYPE_CHECKING:
    from .scheduler import Poller
    from .store.outbox import OutboxStats
    from .timesync import TimeSync

STATUS_FILE = "status.json"

# "x-ref": a definition shared with the other payloads in docs/payload.schema.json (docgen links it)
Count = Annotated[int, Field(ge=0)]
EpochMs = Annotated[int, Field(ge=0), WithJsonSchema({"x-ref": "epoch_ms"})]
Gateway = Annotated[str, WithJsonSchema({"x-ref": "gateway"})]


def _absent(value: object) -> bool:
    return value is None


def _empty(value: object) -> bool:
    return not value


class Part(BaseModel):
    """A part of the health document. Unknown keys (from a newer agent) are ignored when reading."""

    # serialization schema: every field with a default is still always written, hence required
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)


class Drops(Part):
    raw: Count = Field(0, description="Raw telemetry messages dropped.")
    agg: Count = Field(0, description="Aggregate and energy messages dropped.")
    event: Count = Field(0, description="Event and command result messages dropped.")
    audit: Count = Field(0, description="Audit records dropped.")


class BufferHealth(Part):
    depth: Count = Field(0, description="Messages waiting in the outbox.")
    bytes: Count = Field(0, description="Bytes the outbox takes on disk.")
    oldest_unsent_age_s: float = Field(0.0, ge=0, description="Age of the oldest message not yet acknowledged "
                                                               "(0 when none waits).")
    drops: Drops = Field(default_factory=Drops, description="Messages dropped by the disk cap, per priority, "
                                                           "since installation.")
    last_seq: Count = Field(0, description="The last `seq` issued.")


class RefusedTopic(Part):
    nacks: int = Field(1, ge=1, description="Refusals counted.")
    reason: str = Field("", description="The broker's reason.")
    retry_in_s: float = Field(0.0, ge=0, description="Seconds to the next retry.")


class UplinkStats(Part):
    connected: bool = Field(False, description="Connected to the broker.")
    commands_subscribed: bool = Field(False, description="The command subscription is active.")
    published: Count = Field(0, description="Outbox messages handed to the broker connection.")
    acked: Count = Field(0, description="Outbox messages the broker acknowledged.")
    inflight: Count = Field(0, description="Messages published and not yet acknowledged.")
    connects: Count = Field(0, description="Successful connections since start.")
    reconnects: Count = Field(0, description="Connections after the first.")
    connect_failures: Count = Field(0, description="Failed connection attempts.")
    publish_errors: Count = Field(0, description="Publishes the client could not send.")
    nacks: Count = Field(0, description="Messages the broker refused (MQTT 5 negative PUBACK).")
    refused_topics: dict[str, RefusedTopic] = Field(
        default_factory=dict, description="Topics the broker refuses (MQTT 5): their messages are kept and retried.")
    commands: Count = Field(0, description="Commands received.")
    last_error: str | None = Field(None, description="The last connection or publish problem (null when connected).")
    msgs_per_s: float = Field(0.0, ge=0, description="Messages acknowledged per second, last interval.")
    readings_per_s: float = Field(0.0, ge=0, description="Readings acknowledged per second, last interval.")


class PipelineHealth(Part):
    """Counters of the pipeline; the pipeline updates an instance in place."""

    readings_in: Count = Field(0, description="Readings submitted by the pollers since start.")
    messages_committed: Count = Field(0, description="Messages committed to the outbox since start.")
    commit_errors: Count = Field(0, description="Failed commits.")
    held: Count = Field(0, description="Messages held in memory because the outbox cannot store them.")
    held_bytes: Count = Field(0, description="JSON bytes of the held messages.")


class DeviceReport(Part):
    up: bool = Field(False, description="The last poll succeeded.")
    stale: bool = Field(False, description="No good poll for `stale_after` seconds.")
    polls_ok: Count = Field(0, description="Good polls since start.")
    polls_failed: Count = Field(0, description="Failed polls since start.")
    consecutive_failures: Count = Field(0, description="Failed polls since the last good one.")
    readings: Count = Field(0, description="Readings taken since start.")
    last_ok_ms: Count = Field(0, description="UTC epoch ms of the last good poll (0: never).")
    last_error: str = Field("", description="The last failure.")
    latency_ms: float = Field(0.0, ge=0, description="Duration of the last good poll.")
    latency_avg_ms: float = Field(0.0, ge=0, description="Moving average of the poll duration.")
    diagnostics: dict[str, Any] = Field(default_factory=dict, exclude_if=_empty,
                                        description="Driver-specific figures; absent when the driver has none.")


class ClockStatus(Part):
    synchronized: bool | None = Field(None, description="Clock synchronised; null when no source could be asked.")
    source: str = Field("none", description="What decided: kernel, systemd-timesyncd, chrony, ntpd or none.")
    detail: str = Field("", description="What the source reported.")


class HealthReport(Part):
    model_config = ConfigDict(json_schema_extra={
        "x-topic": "{prefix}/{gateway}/health",
        "description": "Not stored in the outbox (no seq): published at QoS 0 every health interval.",
    })

    v: Literal[1] = Field(1, description="Schema version.")
    gateway: Gateway = Field("", description="`gateway.id`.")
    ts: EpochMs = Field(0, description="When the report was made, UTC epoch ms.")
    uptime_s: float = Field(0.0, ge=0, description="Seconds since the agent started.")
    buffer: BufferHealth = Field(default_factory=BufferHealth, description="The outbox.")
    uplink: UplinkStats | None = Field(None, exclude_if=_absent,
                                       description="The MQTT connection; absent when no broker is configured.")
    pipeline: PipelineHealth = Field(default_factory=PipelineHealth, description="Commits to the outbox.")
    devices: dict[str, DeviceReport] = Field(default_factory=dict, description="Per configured device.")
    clock: ClockStatus | None = Field(None, exclude_if=_absent, description="Clock synchronisation as detected.")
    processing: dict[str, Any] | None = Field(None, exclude_if=_absent,
                                              description="Processing figures; absent when processing is off.")
    buses: dict[str, Any] | None = Field(None, exclude_if=_absent,
                                         description="Per shared line (transport) figures; absent without lines.")

    def to_wire(self) -> dict[str, Any]:
        """The document as plain JSON types (what is published and written)."""
        return self.model_dump(mode="json")


class StatusFile(HealthReport):
    """The status file: the health document plus the pid of the agent that wrote it."""

    pid: int | None = None


def _plain(section: dict | None) -> dict | None:
    """Component figures may use int keys (unit ids) and numpy scalars: make them plain JSON."""
    if not section:
        return None
    return orjson.loads(orjson.dumps(section, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


def buffer_health(ob: OutboxStats, now_ms: int) -> BufferHealth:
    oldest = ob.oldest_created_ms
    return BufferHealth(depth=ob.depth, bytes=ob.bytes, last_seq=ob.last_seq, drops=Drops(**ob.drops),
                        oldest_unsent_age_s=round(max(0, now_ms - oldest) / 1000, 1) if oldest else 0.0)


def build_health(*, gateway: str, started_mono: float, now_ms: int, outbox_stats: OutboxStats,
                 uplink_stats: UplinkStats | None, pipeline_stats: PipelineHealth, pollers: Iterable[Poller],
                 processing: dict | None, buses: dict | None, clock: TimeSync | None = None) -> HealthReport:
    return HealthReport(
        gateway=gateway, ts=now_ms, uptime_s=round(time.monotonic() - started_mono, 1),
        buffer=buffer_health(outbox_stats, now_ms), uplink=uplink_stats,
        pipeline=pipeline_stats.model_copy(),
        devices={p.name: p.health.report() for p in pollers},
        clock=None if clock is None else ClockStatus(synchronized=clock.synchronized, source=clock.source,
                                                     detail=clock.detail),
        processing=_plain(processing), buses=_plain(buses),
    )


def write_status(state_dir: Path, report: HealthReport) -> None:
    """Atomically replace the status file (readers never see half a document). Raises OSError (e.g.
    disk full) after removing the partly written temporary file."""
    path = state_dir / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    try:
        # pid: `status` tells if the agent still runs
        tmp.write_bytes(orjson.dumps({**report.to_wire(), "pid": os.getpid()}))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def parse_status(doc: dict) -> StatusFile:
    """A status document read back, tolerant of missing parts (their defaults) and of damaged ones
    (left out: ``model_fields_set`` tells which parts the document had)."""
    try:
        return StatusFile.model_validate(doc)
    except ValidationError as e:
        bad = {err["loc"][0] for err in e.errors() if err["loc"]}
        return StatusFile.model_validate({k: v for k, v in doc.items() if k not in bad})

