"""What the page shows, as JSON: the health report, latest values with units and quality flags, recent
events, the site's allocations, and the config in force with its secrets masked."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..model import Quality
from ..series import LatestValues, SeriesTable
from ..store.rows import Pending, Priority

SECRET_KEY = re.compile(r"pass|secret|token|credential|private|(^|_)key$", re.IGNORECASE)
MASK = "********"
EVENT_RING = 100


def quality_flags(q: int) -> list[str]:
    return [f.name.lower() for f in Quality if f.value and q & f.value]


def latest_values(series: SeriesTable, latest: LatestValues) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    values, stamps, qualities = latest.value.tolist(), latest.ts.tolist(), latest.quality.tolist()  # (not a
    flags: dict[int, list[str]] = {}  # numpy scalar per series: the page asks for all of them every refresh)
    for sid, device, m in series.labels():
        value, q = values[sid], qualities[sid]
        if q not in flags:
            flags[q] = quality_flags(q)
        out.setdefault(device, []).append({
            "id": sid, "metric": m.name, "unit": m.unit, "ts": stamps[sid],
            "value": None if math.isnan(value) else value, "flags": list(flags[q])})
    return out


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking key's value replaced (SecretStr already dumps as stars)."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, key) for v in value]
    if SECRET_KEY.search(key) and value not in (None, "", False):
        return MASK
    return value


class EventLog:
    """The last events (anomalies, faults, site changes, command results), newest last."""

    def __init__(self, event_topic: str, size: int = EVENT_RING):
        self.event_topic = event_topic
        self.items: deque[dict[str, Any]] = deque(maxlen=size)

    def tap(self, messages: Iterable[Pending]) -> None:
        for m in messages:
            if m.priority is Priority.EVENT and (m.topic == self.event_topic or m.topic.endswith("/result")):
                body = masked(dict(m.body))
                body.setdefault("kind", body.get("type") or ("command_result" if m.topic.endswith("/result")
                                                              else "event"))
                self.items.append(body)
