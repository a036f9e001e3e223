"""Payload bodies. Every outbox message body carries ``gateway`` and ``seq`` (set by the outbox).

Schema: docs/payload.schema.json. Non-finite values are sent as ``null`` (JSON has no NaN).

Telemetry goes from columns to JSON without a Python object per reading: :class:`TelemetryEncoder`
has orjson format each column once (C loops), interleaves the pieces with each series' constant
``"metric"`` and ``"unit"`` text in numpy object arrays, and hands the readings array to the outbox's
``orjson.dumps`` as an ``orjson.Fragment``. The bytes are those of :func:`reading_rows` +
:func:`chunk_bodies` (the readable definition, kept for tests), to the byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import orjson

SCHEMA_VERSION = 1
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


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


def _column(a: np.ndarray) -> list[bytes]:
    """Each element as orjson writes it (NaN and infinities as null); none contains a comma."""
    return orjson.dumps(np.ascontiguousarray(a), option=_NUMPY)[1:-1].split(b",")


class TelemetryEncoder:
    """Telemetry bodies straight from columns; ``series`` index ``metric_names``/``units``."""

    def __init__(self, metric_names: Sequence[str], units: Sequence[str]):
        self._metric = np.array([b',"metric":' + orjson.dumps(m) + b',"value":' for m in metric_names], object)
        self._unit = np.array([b',"unit":' + orjson.dumps(u) + b',"q":' for u in units], object)

    def pieces(self, ts: np.ndarray, series: np.ndarray, value: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """The JSON text of every reading as 7 pieces (one row each); encode a whole cycle at once, as
        numpy's per-call cost would outweigh a few dozen readings."""
        n = len(ts)
        parts = np.empty((n, 7), object)
        if n == 0:
            return parts
        starts = np.flatnonzero(ts[1:] != ts[:-1]) + 1  # a poll's readings share one timestamp: runs
        lengths = np.diff(starts, prepend=0, append=n)
        parts[:, 0] = b'{"ts":'
        parts[:, 1] = np.repeat(np.array(_column(ts[np.concatenate(([0], starts))]), object), lengths)
        parts[:, 2] = self._metric[series]
        parts[:, 3] = _column(value.astype(np.float64, copy=False))
        parts[:, 4] = self._unit[series]
        parts[:, 5] = _column(quality)
        parts[:, 6] = b"},"
        return parts

    @staticmethod
    def split(device: str, parts: np.ndarray, per_message: int) -> list[tuple[dict, int]]:
        """(body, readings in it) per message of at most ``per_message`` of ``parts``' readings, in order."""
        out = []
        n = len(parts)
        for i in range(0, n, per_message):
            rows = b"".join(parts[i:i + per_message].ravel().tolist())
            readings = orjson.Fragment(b"[" + rows[:-1] + b"]")
            out.append(({"v": SCHEMA_VERSION, "device": device, "readings": readings}, min(per_message, n - i)))
        return out

    def bodies(self, device: str, ts: np.ndarray, series: np.ndarray, value: np.ndarray, quality: np.ndarray,
               per_message: int) -> list[tuple[dict, int]]:
        """(body, readings in it) per message of at most ``per_message`` readings of one device, in order."""
        return self.split(device, self.pieces(ts, series, value, quality), per_message)
