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
        text: dict[str, bytes] = {}  # one piece per distinct name: devices of one profile repeat them
        self._metric = np.array([text.get(m) or text.setdefault(m, b',"metric":' + orjson.dumps(m) + b',"value":')
                                 for m in metric_names], object)
        distinct = {u: i for i, u in enumerate(dict.fromkeys(units))}  # a few units among many series
        self._unit_text = [b',"unit":' + orjson.dumps(u) + b',"q":' for u in distinct]
        self._unit_of = np.array([distinct[u] for u in units], np.intp)

    def _tails(self, quality: np.ndarray) -> np.ndarray:
        """``,"unit":…,"q":Q},`` for every (unit, quality) pair present, indexed unit-major."""
        return np.array([u + b"%d}," % q for u in self._unit_text for q in quality.tolist()], object)

    def pieces(self, ts: np.ndarray, series: np.ndarray, value: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """The JSON text of every reading as 4 pieces (one row each): ``{"ts":T`` (one per poll: a poll's
        readings share a timestamp), the series' metric, the value, the unit and quality. Encode a whole
        cycle at once, as numpy's per-call cost would outweigh a few dozen readings."""
        n = len(ts)
        parts = np.empty((n, 4), object)
        if n == 0:
            return parts
        starts = np.flatnonzero(ts[1:] != ts[:-1]) + 1
        if starts.size:  # several polls: each reading takes its poll's head (no np.diff/np.repeat: their
            # Python-level set-up cost more than the work at a few hundred readings)
            heads = np.array([b'{"ts":' + t for t in _column(ts[np.concatenate(([0], starts))])], object)
            run = np.zeros(n, np.intp)
            run[starts] = 1
            parts[:, 0] = heads[run.cumsum(out=run)]
        else:  # one poll: one head
            parts[:, 0] = b'{"ts":' + _column(ts[:1])[0]
        parts[:, 1] = self._metric[series]
        parts[:, 2] = _column(value.astype(np.float64, copy=False))
        unit = self._unit_of[series]
        if (quality == quality[0]).all():  # the usual case: one quality for the whole cycle
            parts[:, 3] = self._tails(quality[:1])[unit]
        else:
            distinct, which = np.unique(quality, return_inverse=True)
            parts[:, 3] = self._tails(distinct)[unit * len(distinct) + which.reshape(-1)]
        return parts

    @staticmethod
    def split(device: str, parts: np.ndarray, per_message: int) -> list[tuple[dict, int]]:
        """(body, readings in it) per message of at most ``per_message`` of ``parts``' readings, in order."""
        out = []
        n, k = parts.shape
        flat = parts.ravel().tolist()
        for i in range(0, n, per_message):
            rows = b"".join(flat[k * i:k * (i + per_message)])
            readings = orjson.Fragment(b"[" + rows[:-1] + b"]")
            out.append(({"v": SCHEMA_VERSION, "device": device, "readings": readings}, min(per_message, n - i)))
        return out

    def bodies(self, device: str, ts: np.ndarray, series: np.ndarray, value: np.ndarray, quality: np.ndarray,
               per_message: int) -> list[tuple[dict, int]]:
        """(body, readings in it) per message of at most ``per_message`` readings of one device, in order."""
        return self.split(device, self.pieces(ts, series, value, quality), per_message)
