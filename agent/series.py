"""Series table: every (device, metric) pair gets a dense integer id at config time.

Per-series state elsewhere (window accumulators, detector state, latest values) lives in numpy
arrays indexed by this id. A device's metrics occupy ids ``base .. base + len(metrics) - 1`` in the
order its driver declared them, so a driver-local metric index plus the device base is the id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import MetricKind, MetricSpec, Series


class SeriesTable:
    def __init__(self) -> None:
        self._series: list[Series] = []
        # device -> metric -> offset from the device's base: devices declaring the same metrics share one
        # dict (100 meters of one profile hold 60 entries, not 6000 keys)
        self._offsets: dict[str, dict[str, int]] = {}
        self._shared: dict[tuple[str, ...], dict[str, int]] = {}
        self._base: dict[str, int] = {}
        self._count: dict[str, int] = {}

    def add_device(self, device: str, metrics: Sequence[MetricSpec]) -> int:
        """Register a device's metrics; returns its base id."""
        if device in self._base:
            raise ValueError(f"device {device!r} registered twice")
        names = tuple(m.name for m in metrics)
        offsets = self._shared.get(names)
        if offsets is None:
            offsets = {}
            for i, name in enumerate(names):
                if name in offsets:
                    raise ValueError(f"device {device!r} declares metric {name!r} twice")
                offsets[name] = i
            self._shared[names] = offsets
        base = len(self._series)
        self._base[device] = base
        self._count[device] = len(metrics)
        self._offsets[device] = offsets
        for i, m in enumerate(metrics):
            self._series.append(Series(base + i, device, m.name, m.unit, MetricKind(m.kind), m.valid_min, m.valid_max,
                                       m.restarts, m.max_per_hour, m.anomaly, m.significant,
                                       m.significant_rel, m.medium))
        return base

    def __len__(self) -> int:
        return len(self._series)

    def __getitem__(self, sid: int) -> Series:
        return self._series[sid]

    def __iter__(self):
        return iter(self._series)

    def id(self, device: str, metric: str) -> int:
        return self._base[device] + self._offsets[device][metric]

    def base(self, device: str) -> int:
        return self._base[device]

    def device_ids(self, device: str) -> range:
        b = self._base[device]
        return range(b, b + self._count[device])

    def devices(self) -> list[str]:
        return list(self._base)

    def index(self, device: str) -> dict[str, int]:
        """metric name -> global id for one device."""
        return {self._series[i].metric: i for i in self.device_ids(device)}


class LatestValues:
    """Last good value and timestamp per series (NaN / 0 when never seen). Read by control loops."""

    def __init__(self, n: int):
        self.value = np.full(n, np.nan)
        self.ts = np.zeros(n, np.int64)
        self.quality = np.zeros(n, np.uint32)

    def update(self, series: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> None:
        # later rows win; numpy fancy assignment keeps the last occurrence of a repeated index
        newer = ts >= self.ts[series]
        s = series[newer]
        self.value[s] = value[newer]
        self.ts[s] = ts[newer]
        self.quality[s] = quality[newer]

    def get(self, sid: int) -> tuple[float, int, int]:
        return float(self.value[sid]), int(self.ts[sid]), int(self.quality[sid])
