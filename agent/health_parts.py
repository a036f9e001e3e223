"""The health document as the running agent builds it: plain dataclasses, no pydantic.

The producers fill their parts (the pollers a :class:`DeviceReport`, the uplink its
:class:`UplinkStats`, the pipeline its :class:`PipelineHealth`); :mod:`agent.health` assembles the
document and :meth:`Part.to_wire` makes it JSON. These classes are the one source of the document's
fields: :mod:`agent.health_model` builds pydantic models from them (``edge-agent status`` reads the
status file back with those, and the health schema in docs/payload.schema.json and the field table
in docs/payloads.md are generated from them). A field's annotation names a type of that module
(``Count``: an int >= 0, ``EpochMs``, ``Gateway``), its metadata the description and constraints.
Every field has a default so that a report with missing parts still parses; the agent always writes
every field (only the sections marked optional, ``exclude_if``, may be absent).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

STATUS_FILE = "status.json"

Count = int  # >= 0 (the model's ``Count``)
EpochMs = int  # UTC epoch milliseconds (the model's ``EpochMs``, a definition shared with the other payloads)
Gateway = str  # ``gateway.id`` (shared with the other payloads)
_ = Literal  # (named by HealthReport.v's annotation)


def _absent(value: object) -> bool:
    return value is None


def _empty(value: object) -> bool:
    return not value


def part(default: Any = dataclasses.MISSING, *, description: str, default_factory: Any = dataclasses.MISSING,
         ge: float | None = None, exclude_if: Any = None) -> Any:
    """A field of a part: its default, and the description and constraints the model and the docs use."""
    meta = {"description": description, "ge": ge, "exclude_if": exclude_if}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _wire(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_wire()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "__pydantic_fields__"):  # a part given as the model (agent.health_model): its JSON
        return value.model_dump(mode="json")
    return value


class Part:
    """A part of the health document."""

    __slots__ = ()

    def to_wire(self) -> dict[str, Any]:
        """The part as plain JSON types (what is published and written): sections marked ``exclude_if``
        are left out when they say so."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            skip = f.metadata.get("exclude_if")
            if skip is None or not skip(value):
                out[f.name] = _wire(value)
        return out

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        """What the model's ``model_dump`` gives (the document's parts as dicts)."""
        return self.to_wire() if mode == "json" else {f.name: _python(getattr(self, f.name))
                                                      for f in dataclasses.fields(self)  # type: ignore[arg-type]
                                                      if not (f.metadata.get("exclude_if") or _never)(getattr(self, f.name))}

    def model_copy(self) -> Any:
        return dataclasses.replace(self)  # type: ignore[type-var]


def _never(value: object) -> bool:
    return False


def _python(value: Any) -> Any:
    if isinstance(value, Part):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    return value


@dataclass(slots=True)
class Drops(Part):
    raw: Count = part(0, description="Raw telemetry messages dropped.")
    agg: Count = part(0, description="Aggregate and energy messages dropped.")
    event: Count = part(0, description="Event and command result messages dropped.")
    audit: Count = part(0, description="Audit records dropped.")


@dataclass(slots=True)
class BufferHealth(Part):
    depth: Count = part(0, description="Messages waiting in the outbox.")
    bytes: Count = part(0, description="Bytes the outbox takes on disk.")
    oldest_unsent_age_s: float = part(0.0, ge=0, description="Age of the oldest message not yet acknowledged "
                                                               "(0 when none waits).")
    drops: Drops = part(default_factory=Drops, description="Messages dropped by the disk cap, per priority, "
                                                           "since installation.")
    last_seq: Count = part(0, description="The last `seq` issued.")
    stream: str | None = part(None, description="The outbox's identity, carried in every message beside `seq` "
                                                 "(null only before the outbox has one).")


@dataclass(slots=True)
class RefusedTopic(Part):
    nacks: int = part(1, ge=1, description="Refusals counted.")
    reason: str = part("", description="The broker's reason.")
    retry_in_s: float = part(0.0, ge=0, description="Seconds to the next retry.")


@dataclass(slots=True)
class UplinkStats(Part):
    connected: bool = part(False, description="Connected to the broker.")
    commands_subscribed: bool = part(False, description="The command subscription is active.")
    published: Count = part(0, description="Outbox messages handed to the broker connection.")
    acked: Count = part(0, description="Outbox messages the broker acknowledged.")
    inflight: Count = part(0, description="Messages published and not yet acknowledged.")
    connects: Count = part(0, description="Successful connections since start.")
    reconnects: Count = part(0, description="Connections after the first.")
    connect_failures: Count = part(0, description="Failed connection attempts.")
    publish_errors: Count = part(0, description="Publishes the client could not send.")
    nacks: Count = part(0, description="Messages the broker refused (MQTT 5 negative PUBACK).")
    refused_topics: dict[str, RefusedTopic] = part(
        default_factory=dict, description="Topics the broker refuses (MQTT 5): their messages are kept and retried.")
    commands: Count = part(0, description="Commands received.")
    last_error: str | None = part(None, description="The last connection or publish problem (null when connected).")
    msgs_per_s: float = part(0.0, ge=0, description="Messages acknowledged per second, last interval.")
    readings_per_s: float = part(0.0, ge=0, description="Readings acknowledged per second, last interval.")


@dataclass(slots=True)
class PipelineHealth(Part):
    """Counters of the pipeline; the pipeline updates an instance in place."""

    readings_in: Count = part(0, description="Readings submitted by the pollers since start.")
    messages_committed: Count = part(0, description="Messages committed to the outbox since start.")
    commit_errors: Count = part(0, description="Failed commits.")
    held: Count = part(0, description="Messages held in memory because the outbox cannot store them.")
    held_bytes: Count = part(0, description="JSON bytes of the held messages.")
    clock_waiting: Count = part(0, description="Messages stored before the clock was synchronised, waiting for "
                                                "the first sync of this boot to have their timestamps repaired.")
    clock_repaired: Count = part(0, description="Messages whose timestamps were repaired at a clock sync, since start.")
    clock_estimated: Count = part(0, description="Messages of an earlier boot that never synchronised, published "
                                                  "flagged (`clock: estimated`), since start.")
    clock_steps: Count = part(0, description="Wall clock steps (> 1 s) seen since start; each splits the "
                                              "aggregation windows.")
    clock_last_step_s: float = part(0.0, description="Size of the last step in seconds (negative: backwards).")


@dataclass(slots=True)
class DeviceReport(Part):
    up: bool = part(False, description="The last poll succeeded.")
    stale: bool = part(False, description="No good poll for `stale_after` seconds.")
    polls_ok: Count = part(0, description="Good polls since start.")
    polls_failed: Count = part(0, description="Failed polls since start.")
    consecutive_failures: Count = part(0, description="Failed polls since the last good one.")
    readings: Count = part(0, description="Readings taken since start.")
    last_ok_ms: Count = part(0, description="UTC epoch ms of the last good poll (0: never).")
    last_error: str = part("", description="The last failure.")
    latency_ms: float = part(0.0, ge=0, description="Duration of the last good poll.")
    latency_avg_ms: float = part(0.0, ge=0, description="Moving average of the poll duration.")
    diagnostics: dict[str, Any] = part(default_factory=dict, exclude_if=_empty,
                                        description="Driver-specific figures; absent when the driver has none.")


@dataclass(slots=True)
class ClockStatus(Part):
    synchronized: bool | None = part(None, description="Clock synchronised; null when no source could be asked.")
    source: str = part("none", description="What decided: kernel, systemd-timesyncd, chrony, ntpd or none.")
    detail: str = part("", description="What the source reported.")


@dataclass(slots=True)
class ConfigVersion(Part):
    version: int | None = part(None, description="Version of the active config as pushed (null: never pushed).")
    sha256: str = part("", description="First 16 hex digits of the SHA-256 of the active config file.")
    trial: bool = part(False, description="A pushed config on trial: not yet confirmed by reaching the broker.")


@dataclass(slots=True)
class HealthReport(Part):
    SCHEMA_EXTRA: ClassVar[dict[str, str]] = {
        "x-topic": "{prefix}/{gateway}/health",
        "description": "Not stored in the outbox (no seq): published at QoS 0 every health interval.",
    }

    v: Literal[1] = part(1, description="Schema version.")
    gateway: Gateway = part("", description="`gateway.id`.")
    ts: EpochMs = part(0, description="When the report was made, UTC epoch ms.")
    uptime_s: float = part(0.0, ge=0, description="Seconds since the agent started.")
    buffer: BufferHealth = part(default_factory=BufferHealth, description="The outbox.")
    uplink: UplinkStats | None = part(None, exclude_if=_absent,
                                       description="The MQTT connection; absent when no broker is configured.")
    pipeline: PipelineHealth = part(default_factory=PipelineHealth, description="Commits to the outbox.")
    devices: dict[str, DeviceReport] = part(default_factory=dict, description="Per configured device.")
    clock: ClockStatus | None = part(None, exclude_if=_absent, description="Clock synchronisation as detected.")
    processing: dict[str, Any] | None = part(None, exclude_if=_absent,
                                              description="Processing figures; absent when processing is off.")
    buses: dict[str, Any] | None = part(None, exclude_if=_absent,
                                         description="Per shared line (transport) figures; absent without lines.")
    config: ConfigVersion | None = part(None, exclude_if=_absent,
                                         description="The active config (see Remote operations in docs/fleet.md).")


PARTS = (Drops, BufferHealth, RefusedTopic, UplinkStats, PipelineHealth, DeviceReport, ClockStatus, ConfigVersion,
         HealthReport)
