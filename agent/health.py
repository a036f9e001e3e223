"""Self-metrics: one health document, published on the health topic and written to
``{state_dir}/status.json`` for ``edge-agent status``."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson

STATUS_FILE = "status.json"


def build_health(*, gateway: str, started_mono: float, now_ms: int, outbox_stats: Any, uplink_stats: dict,
                 pipeline_stats: Any, pollers: list, processing: dict | None, buses: dict | None,
                 clock: dict | None = None) -> dict:
    ob = outbox_stats
    oldest = getattr(ob, "oldest_created_ms", None)
    body: dict[str, Any] = {
        "v": 1,
        "gateway": gateway,
        "ts": now_ms,
        "uptime_s": round(time.monotonic() - started_mono, 1),
        "buffer": {
            "depth": ob.depth,
            "bytes": ob.bytes,
            "oldest_unsent_age_s": round((now_ms - oldest) / 1000, 1) if oldest else 0.0,
            "drops": dict(ob.drops),
            "last_seq": ob.last_seq,
        },
        "uplink": uplink_stats,
        "pipeline": {
            "readings_in": pipeline_stats.readings_in,
            "messages_committed": pipeline_stats.messages_committed,
            "commit_errors": pipeline_stats.commit_errors,
            "held": getattr(pipeline_stats, "held", 0),
            "held_bytes": getattr(pipeline_stats, "held_bytes", 0),
        },
        "devices": {p.name: p.health.as_dict() for p in pollers},
    }
    if clock:
        body["clock"] = clock  # what the time sync detection found (agent.timesync)
    if processing:
        body["processing"] = processing
    if buses:
        body["buses"] = buses
    # components report with int keys (unit ids) and numpy scalars: make it plain JSON once, here
    return orjson.loads(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


def write_status(state_dir: Path, body: dict) -> None:
    """Atomically replace the status file (readers never see half a document). Raises OSError (e.g.
    disk full) after removing the partly written temporary file."""
    path = state_dir / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps({**body, "pid": os.getpid()}, default=str))  # pid: `status` tells if it still runs
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_status(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
