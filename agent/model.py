"""The data model shared by every layer: quality flags, metric specs, samples and columnar batches.

A reading is (ts epoch ms, device, metric, value float64, unit, quality bits). In the hot path
readings travel as a :class:`Batch` of numpy columns indexed by a dense series id.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np


class Quality(enum.IntFlag):
    """Per-reading quality bits (published as ``q``; 0 means good)."""

    OK = 0
    OUT_OF_RANGE = 1 << 0
    STUCK = 1 << 1
    SPIKE = 1 << 2
    ANOMALY = 1 << 3
    STALE = 1 << 4
    ESTIMATED = 1 << 5
    CLOCK_UNSYNCED = 1 << 6
    RATE_OF_CHANGE = 1 << 7
    DEVICE_FLAGGED = 1 << 8  # the device itself reported a fault with this value
    IMPLAUSIBLE = 1 << 9  # contradicts the same frame or the series' own history (PM1 > PM2.5, counter backwards)
    OUT_OF_SERVICE = 1 << 10  # the device says the value is not from its physical input (BACnet out-of-service)
    OVERRIDDEN = 1 << 11  # the device says a local override holds the value (BACnet overridden)


class MetricKind(enum.StrEnum):
    GAUGE = "gauge"  # instantaneous value (V, W, ppm)
    COUNTER = "counter"  # monotonically increasing total (kWh, pulses); may roll over or reset
    STATE = "state"  # enumerated state encoded as a number (IEC 61851 state, on/off)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric a driver promises to deliver. Declared up front so series get dense ids.

    ``valid_min``/``valid_max`` give the sensor's specified range: a value outside it is flagged
    OUT_OF_RANGE (a device's ``checks`` may narrow or widen it). ``restarts`` marks a counter the
    device restarts from zero on purpose (a charging session's energy); any other counter that goes
    backwards is a glitch until the new level is confirmed.

    ``max_per_hour`` (counters) is the most the register can physically rise in an hour (an energy
    register: the device's rated power); a larger step is held as a glitch until confirmed.
    ``anomaly`` says whether the metric carries information of its own (False for derived or
    max-hold registers): the anomaly detector runs by default on gauges that do. ``significant``
    is the smallest change that matters for the metric (in its unit: its resolution or noise
    floor), ``significant_rel`` the same as a fraction of the metric's current level (ordinary load
    variation); a smaller departure from the baseline never raises an anomaly. ``medium`` says what
    a counter meters when it is not electricity ("water", "gas", "heat", "cooling"): only
    electricity counters ("") feed the energy ledger (tariff, grid emission factor).
    """

    name: str
    unit: str = ""
    kind: MetricKind = MetricKind.GAUGE
    description: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    restarts: bool = False
    max_per_hour: float | None = None
    anomaly: bool = True
    significant: float = 0.0
    significant_rel: float = 0.0
    medium: str = ""


class Sample(NamedTuple):
    """One value from a driver. ``ts_ms`` None means "stamp with the poll time"."""

    metric: str
    value: float
    quality: int = 0
    ts_ms: int | None = None


@dataclass(slots=True)
class Batch:
    """Columnar readings: parallel numpy arrays of equal length.

    ``series`` holds global series ids (or, straight out of a driver, metric indexes local to the
    driver; the poller adds the device's series base).
    """

    series: np.ndarray  # int32
    ts: np.ndarray  # int64 epoch ms
    value: np.ndarray  # float64
    quality: np.ndarray  # uint32

    def __len__(self) -> int:
        return int(self.series.shape[0])

    @classmethod
    def empty(cls) -> Batch:
        import numpy as np

        return cls(
            np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint32)
        )

    @classmethod
    def from_columns(
        cls,
        series: Iterable[int] | np.ndarray,
        ts: Iterable[int] | np.ndarray,
        value: Iterable[float] | np.ndarray,
        quality: Iterable[int] | np.ndarray | None = None,
    ) -> Batch:
        import numpy as np

        s = np.asarray(series, dtype=np.int32)
        t = np.asarray(ts, dtype=np.int64)
        v = np.asarray(value, dtype=np.float64)
        q = np.zeros(s.shape[0], np.uint32) if quality is None else np.asarray(quality, dtype=np.uint32)
        if not (s.shape == t.shape == v.shape == q.shape) or s.ndim != 1:
            raise ValueError(f"batch columns differ in shape: {s.shape} {t.shape} {v.shape} {q.shape}")
        return cls(s, t, v, q)

    @classmethod
    def from_samples(cls, samples: Sequence[Sample], index: dict[str, int], now_ms: int) -> Batch:
        """Build a batch from driver samples; ``index`` maps metric name -> series id.

        Raises KeyError naming the metric when a driver returns one it did not declare.
        """
        import numpy as np

        n = len(samples)
        series = np.empty(n, np.int32)
        ts = np.empty(n, np.int64)
        value = np.empty(n, np.float64)
        quality = np.empty(n, np.uint32)
        for i, s in enumerate(samples):
            try:
                series[i] = index[s.metric]
            except KeyError:
                raise KeyError(f"driver returned undeclared metric {s.metric!r}") from None
            ts[i] = now_ms if s.ts_ms is None else s.ts_ms
            value[i] = s.value
            quality[i] = s.quality
        return cls(series, ts, value, quality)

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        if not batches:
            return Batch.empty()
        if len(batches) == 1:
            return batches[0]
        import numpy as np

        return Batch(
            np.concatenate([b.series for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )


@dataclass(frozen=True, slots=True)
class Series:
    """A (device, metric) pair with its dense id, assigned at config time."""

    id: int
    device: str
    metric: str
    unit: str
    kind: MetricKind
    valid_min: float | None = None
    valid_max: float | None = None
    restarts: bool = False
    max_per_hour: float | None = None
    anomaly: bool = True
    significant: float = 0.0
    significant_rel: float = 0.0
    medium: str = ""
