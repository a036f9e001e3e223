"""Self-metrics: one health document, published on the health topic and written to
``{state_dir}/status.json`` for ``edge-agent status``.

The document's models live in :mod:`agent.health_model` (re-exported here), where the producers
(pollers, uplink, pipeline) import them without importing this assembler.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError

from .health_model import (
    STATUS_FILE,
    BufferHealth,
    ClockStatus,
    ConfigVersion,
    Count,
    DeviceReport,
    Drops,
    EpochMs,
    Gateway,
    HealthReport,
    Part,
    PipelineHealth,
    RefusedTopic,
    StatusFile,
    UplinkStats,
)

if TYPE_CHECKING:
    from .scheduler import Poller
    from .store.outbox import OutboxStats
    from .timesync import TimeSync

__all__ = ["STATUS_FILE", "BufferHealth", "ClockStatus", "ConfigVersion", "Count", "DeviceReport", "Drops", "EpochMs", "Gateway",
           "HealthReport", "Part", "PipelineHealth", "RefusedTopic", "StatusFile", "UplinkStats", "build_health",
           "buffer_health", "parse_status", "write_status"]


def _plain(section: dict | None) -> dict | None:
    """Component figures may use int keys (unit ids) and numpy scalars: make them plain JSON."""
    if not section:
        return None
    return orjson.loads(orjson.dumps(section, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


def buffer_health(ob: OutboxStats, now_ms: int) -> BufferHealth:
    oldest = ob.oldest_created_ms
    return BufferHealth(depth=ob.depth, bytes=ob.bytes, last_seq=ob.last_seq, stream=ob.stream,
                        drops=Drops(**ob.drops),
                        oldest_unsent_age_s=round(max(0, now_ms - oldest) / 1000, 1) if oldest else 0.0)


def build_health(*, gateway: str, started_mono: float, now_ms: int, outbox_stats: OutboxStats,
                 uplink_stats: UplinkStats | None, pipeline_stats: PipelineHealth, pollers: Iterable[Poller],
                 processing: dict | None, buses: dict | None, clock: TimeSync | None = None,
                 config: dict | None = None) -> HealthReport:
    return HealthReport(
        gateway=gateway, ts=now_ms, uptime_s=round(time.monotonic() - started_mono, 1),
        buffer=buffer_health(outbox_stats, now_ms), uplink=uplink_stats,
        pipeline=pipeline_stats.model_copy(),
        devices={p.name: p.health.report() for p in pollers},
        clock=None if clock is None else ClockStatus(synchronized=clock.synchronized, source=clock.source,
                                                     detail=clock.detail),
        processing=_plain(processing), buses=_plain(buses),
        config=None if config is None else ConfigVersion(**config),
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

