"""A fixed time-of-use schedule (peak / flat / valley by local hour) with prices.

The site controller accepts any tariff with ``period_at(ts_ms)`` and ``price_at(ts_ms)``; this one is
used when no tariff is configured elsewhere.
"""

from __future__ import annotations

from typing import Protocol

from .config import Period, TouConfig


class Tariff(Protocol):
    def period_at(self, ts_ms: int) -> str: ...

    def price_at(self, ts_ms: int) -> float: ...


class TouSchedule:
    def __init__(self, config: TouConfig):
        self.offset_ms = int(config.utc_offset_hours * 3_600_000)
        self.windows = [(w.start, w.end, w.period) for w in config.windows]
        self.prices = {Period(k): v for k, v in config.prices.items()}

    def period_at(self, ts_ms: int) -> str:
        hour = ((ts_ms + self.offset_ms) % 86_400_000) / 3_600_000
        for start, end, period in self.windows:
            inside = start <= hour < end if start <= end else (hour >= start or hour < end)
            if inside:
                return period.value
        return Period.FLAT.value

    def price_at(self, ts_ms: int) -> float:
        return self.prices.get(Period(self.period_at(ts_ms)), 0.0)
