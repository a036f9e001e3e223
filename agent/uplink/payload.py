"""Payload bodies. Every outbox message body carries ``gateway`` and ``seq`` (set by the outbox).

Schema: docs/payload.schema.json. Non-finite values are sent as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

SCHEMA_VERSION = 1


def reading_rows(
    ts: np.ndarray, series: np.ndarray, value: np.ndarray, quality: np.ndarray,
    metric_names: Sequence[str], units: Sequence[str],
) -> list[dict]:
    """Readings of one device as payload dicts; ``series`` are indexes into metric_names/units."""
    out = []
    for t, s, v, q in zip(ts.tolist(), series.tolist(), value.tolist(), quality.tolist(), strict=True):
        out.append({"ts": t, "metric": metric_names[s], "value": v if math.isfinite(v) else None,
                    "unit": units[s], "q": q})
    return out


def chunk_bodies(device: str, rows: list[dict], per_message: int, *, key: str = "readings") -> Iterator[dict]:
    """Split one device's rows into message bodies of at most ``per_message`` rows each."""
    for i in range(0, len(rows), per_message):
        yield {"v": SCHEMA_VERSION, "device": device, key: rows[i:i + per_message]}
