"""The typed health document: :class:`HealthReport` and its parts.

The producers fill their parts (the pollers a :class:`DeviceReport`, the uplink its
:class:`UplinkStats`, the pipeline its :class:`PipelineHealth`); :mod:`agent.health` assembles the
document. ``edge-agent status`` reads the status file back into these models, and the health schema
in docs/payload.schema.json and the field table in docs/payloads.md are generated from them
(``python -m agent.docgen``). Every field has a default so that a report with missing parts still
parses; the agent always writes every field (only the sections marked optional may be absent).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

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
    stream: str | None = Field(None, description="The outbox's identity, carried in every message beside `seq` "
                                                 "(null only before the outbox has one).")


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
    clock_waiting: Count = Field(0, description="Messages stored before the clock was synchronised, waiting for "
                                                "the first sync of this boot to have their timestamps repaired.")
    clock_repaired: Count = Field(0, description="Messages whose timestamps were repaired at a clock sync, since start.")
    clock_estimated: Count = Field(0, description="Messages of an earlier boot that never synchronised, published "
                                                  "flagged (`clock: estimated`), since start.")
    clock_steps: Count = Field(0, description="Wall clock steps (> 1 s) seen since start; each splits the "
                                              "aggregation windows.")
    clock_last_step_s: float = Field(0.0, description="Size of the last step in seconds (negative: backwards).")


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


class ConfigVersion(Part):
    version: int | None = Field(None, description="Version of the active config as pushed (null: never pushed).")
    sha256: str = Field("", description="First 16 hex digits of the SHA-256 of the active config file.")
    trial: bool = Field(False, description="A pushed config on trial: not yet confirmed by reaching the broker.")


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
    config: ConfigVersion | None = Field(None, exclude_if=_absent,
                                         description="The active config (see Remote operations in docs/fleet.md).")

    def to_wire(self) -> dict[str, Any]:
        """The document as plain JSON types (what is published and written)."""
        return self.model_dump(mode="json")


class StatusFile(HealthReport):
    """The status file: the health document plus the pid of the agent that wrote it."""

    pid: int | None = None
