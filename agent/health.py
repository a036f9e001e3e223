"""Self-metrics: one health document, published on the health topic and written to
``{state_dir}/status.json`` for ``edge-agent status``.

The document's parts live in :mod:`agent.health_parts` (plain dataclasses: the running agent
imports no pydantic), where the producers (pollers, uplink, pipeline) import them without importing
this assembler. The models read back from the status file (:mod:`agent.health_model`, pydantic) are
re-exported here under their names, imported on first use.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from . import health_parts as parts
from .contract.lazy import lazy_exports
from .health_parts import STATUS_FILE

__getattr__ = lazy_exports(__name__, dict.fromkeys(
    ["BufferHealth", "ClockStatus", "ConfigVersion", "Count", "DeviceReport", "Drops", "EpochMs", "Gateway",
     "HealthReport", "Part", "PipelineHealth", "RefusedTopic", "StatusFile", "UplinkStats", "parse_status"],
    "agent.health_model"))

if TYPE_CHECKING:
    from .health_model import (
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
        parse_status,
    )
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


def buffer_health(ob: OutboxStats, now_ms: int) -> parts.BufferHealth:
    oldest = ob.oldest_created_ms
    return parts.BufferHealth(depth=ob.depth, bytes=ob.bytes, last_seq=ob.last_seq, stream=ob.stream,
                              drops=parts.Drops(**ob.drops),
                              oldest_unsent_age_s=round(max(0, now_ms - oldest) / 1000, 1) if oldest else 0.0)


def build_health(*, gateway: str, started_mono: float, now_ms: int, outbox_stats: OutboxStats,
                 uplink_stats: parts.UplinkStats | None, pipeline_stats: parts.PipelineHealth,
                 pollers: Iterable[Poller],
                 processing: dict | None, buses: dict | None, clock: TimeSync | None = None,
                 config: dict | None = None) -> parts.HealthReport:
    return parts.HealthReport(
        gateway=gateway, ts=now_ms, uptime_s=round(time.monotonic() - started_mono, 1),
        buffer=buffer_health(outbox_stats, now_ms), uplink=uplink_stats,
        pipeline=pipeline_stats.model_copy(),  # (the parts' or a model's: both copy)
        devices={p.name: p.health.report() for p in pollers},
        clock=None if clock is None else parts.ClockStatus(synchronized=clock.synchronized, source=clock.source,
                                                           detail=clock.detail),
        processing=_plain(processing), buses=_plain(buses),
        config=None if config is None else parts.ConfigVersion(**config),
    )


def write_status(state_dir: Path, report: parts.HealthReport) -> None:
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
