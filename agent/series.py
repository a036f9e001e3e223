"""Series table: every (device, metric) pair gets a dense integer id at config time.

Per-series state elsewhere (window accumulators, latest values) lives in numpy arrays indexed by this
id; detector and counter state only for the series that use it, through a row per id (see
agent.processing.processor). A device's metrics occupy ids ``base .. base + len(metrics) - 1`` in the
order its driver declared them, so a driver-local metric index plus the device base is the id.
"""

from __future__ import annotations

import contextlib
import operator
from bisect import bisect_right
from collections.abc import Iterator, Sequence

import numpy as np

from .model import MetricKind, MetricSpec, Series


class SeriesTable:
    """The series of every device. A :class:`Series` is built when asked for (at start-up and for the odd
    aggregate or event), not kept: devices of one profile share one tuple of their metric specs, so 100
    meters of 60 metrics hold 60 specs, not 6000 objects."""

    def __init__(self) -> None:
        self._bases: list[int] = []  # each device's base id, ascending
        self._names: list[str] = []  # the devices, in the order of their bases
        self._specs: list[tuple[MetricSpec, ...]] = []  # each device's metric specs (shared between equal lists)
        # device -> metric -> offset from the device's base: devices declaring the same metrics share one dict
        self._offsets: dict[str, dict[str, int]] = {}
        self._shared: dict[tuple[MetricSpec, ...], tuple[tuple[MetricSpec, ...], dict[str, int]]] = {}
        self._base: dict[str, int] = {}
        self._len = 0

    def add_device(self, device: str, metrics: Sequence[MetricSpec]) -> int:
        """Register a device's metrics; returns its base id."""
        if device in self._base:
            raise ValueError(f"device {device!r} registered twice")
        specs = tuple(metrics)
        try:
            shared = self._shared.get(specs)
        except TypeError:  # a spec that cannot be hashed: this device's own copy
            shared = None
        if shared is None:
            offsets: dict[str, int] = {}
            for i, m in enumerate(specs):
                if m.name in offsets:
                    raise ValueError(f"device {device!r} declares metric {m.name!r} twice")
                MetricKind(m.kind)  # a bad kind fails here, not when the series is first asked for
                offsets[m.name] = i
            shared = (specs, offsets)
            with contextlib.suppress(TypeError):
                self._shared[specs] = shared
        base = self._len
        self._base[device] = base
        self._bases.append(base)
        self._names.append(device)
        self._specs.append(shared[0])
        self._offsets[device] = shared[1]
        self._len += len(specs)
        return base

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, sid: int) -> Series:
        sid = operator.index(sid)  # a numpy integer too; the Series holds a Python int
        if not 0 <= sid < self._len:
            raise IndexError(f"series id {sid} out of range (0..{self._len - 1})")
        return self._series(*self._locate(sid))

    def _locate(self, sid: int) -> tuple[int, int]:
        """(device's place, metric's place in it) of a series id."""
        k = bisect_right(self._bases, sid) - 1  # the last device at that base (one without metrics shares it)
        return k, sid - self._bases[k]

    def label(self, sid: int) -> tuple[str, MetricSpec]:
        """(device, metric spec) of one series, without building a :class:`Series` (per aggregate row)."""
        k, i = self._locate(sid)
        return self._names[k], self._specs[k][i]

    def labels(self) -> Iterator[tuple[int, str, MetricSpec]]:
        """(id, device, metric spec) of every series in id order, without building a :class:`Series` each
        (the web page's latest values, every refresh)."""
        for k, specs in enumerate(self._specs):
            base, device = self._bases[k], self._names[k]
            for i, m in enumerate(specs):
                yield base + i, device, m

    def _series(self, k: int, i: int) -> Series:
        m = self._specs[k][i]
        return Series(self._bases[k] + i, self._names[k], m.name, m.unit, MetricKind(m.kind), m.valid_min, m.valid_max,
                      m.restarts, m.max_per_hour, m.anomaly, m.significant, m.significant_rel, m.medium)

    def __iter__(self) -> Iterator[Series]:
        for k, specs in enumerate(self._specs):
            for i in range(len(specs)):
                yield self._series(k, i)

    def id(self, device: str, metric: str) -> int:
        return self._base[device] + self._offsets[device][metric]

    def base(self, device: str) -> int:
        return self._base[device]

    def device_ids(self, device: str) -> range:
        b = self._base[device]
        return range(b, b + len(self._offsets[device]))

    def devices(self) -> list[str]:
        return list(self._base)

    def index(self, device: str) -> dict[str, int]:
        """metric name -> global id for one device."""
        b = self._base[device]
        return {m: b + i for m, i in self._offsets[device].items()}


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
