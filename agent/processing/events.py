"""Anomaly events as operators receive them: one event per device episode, listing its metrics.

The detector kernel marks, per series, where an anomaly starts and ends. A load change shows on
several metrics of one device at once (power, current, apparent power ...); paging once per metric
would page an operator many times for one thing. So an event belongs to a device: it starts when a
first metric of the device turns anomalous (``anomaly_start`` lists every metric that turned at that
same reading time), metrics that turn later while it lasts join it, and it ends when the last of
them has calmed down (``anomaly_end`` lists every metric that took part with its peak score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..series import SeriesTable
from .kernels.detect import (
    D_DEV,
    D_EVPEAK,
    D_MEAN,
    EV_END,
    EV_START,
    EV_START_FLAT,
    EV_START_PATTERN,
    EV_START_STEP,
    EV_START_TOD,
)

SIGNAL = {EV_START: "level", EV_START_FLAT: "flat", EV_START_TOD: "time_of_day", EV_START_STEP: "step",
          EV_START_PATTERN: "pattern"}


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


@dataclass(slots=True)
class _Episode:
    start_ts: int
    start_body: dict
    active: set[int] = field(default_factory=set)
    peaks: dict[int, float] = field(default_factory=dict)  # every metric that took part -> peak score


class DeviceEvents:
    def __init__(self, series: SeriesTable, *, threshold: float):
        self.series = series
        self.threshold = threshold
        self.open: dict[str, _Episode] = {}
        self.started = 0  # device events started since start-up
        self.series_started = 0  # per-metric anomalies that started (grouped into those events)

    def add(self, sids: np.ndarray, ts: np.ndarray, values: np.ndarray, scores: np.ndarray, kinds: np.ndarray,
            det: np.ndarray) -> list[dict]:
        """Bodies for the per-series starts (EV_START*) and ends (EV_END) the kernel marked, in row order;
        ``det`` holds each row's detector state."""
        out: list[dict] = []
        for r, (sid, t, x, sc, kind) in enumerate(zip(sids.tolist(), ts.tolist(), values.tolist(), scores.tolist(),
                                                      kinds.tolist(), strict=True)):
            ser = self.series[sid]
            ep = self.open.get(ser.device)
            if kind in SIGNAL:
                self.series_started += 1
                entry = {"metric": ser.metric, "score": round(sc, 4), "signal": SIGNAL[kind], "value": _num(x), "unit": ser.unit,
                         "baseline": _num(float(det[r, D_MEAN])), "deviation": _num(float(det[r, D_DEV]))}
                if ep is None:
                    body = {"v": 1, "kind": "anomaly_start", "device": ser.device, "ts": t, "metrics": []}
                    ep = self.open[ser.device] = _Episode(t, body)
                    self.started += 1
                    out.append(body)
                if ep.start_ts == t and ep.start_body["kind"] == "anomaly_start":
                    ep.start_body["metrics"].append(entry)
                    self._headline(ep.start_body)
                ep.active.add(sid)
                ep.peaks[sid] = max(ep.peaks.get(sid, 0.0), sc)
            elif kind == EV_END and ep is not None and sid in ep.active:
                ep.active.discard(sid)
                ep.peaks[sid] = max(ep.peaks[sid], float(det[r, D_EVPEAK]))
                if not ep.active:
                    del self.open[ser.device]
                    metrics = [{"metric": self.series[i].metric, "score": round(p, 4)}
                               for i, p in sorted(ep.peaks.items(), key=lambda kv: -kv[1])]
                    out.append({"v": 1, "kind": "anomaly_end", "device": ser.device, "metric": metrics[0]["metric"],
                                "ts": t, "start": ep.start_ts, "score": metrics[0]["score"], "metrics": metrics})
        return out

    def _headline(self, body: dict) -> None:
        """The top-scoring metric also stands in the body's own fields (metric, score, value, context)."""
        top = max(body["metrics"], key=lambda e: e["score"])
        body.update(metric=top["metric"], score=top["score"], value=top["value"],
                    context={"baseline": top["baseline"], "deviation": top["deviation"], "unit": top["unit"],
                             "threshold": self.threshold})
