"""Time-of-use tariff lookup in local time (zoneinfo), scalar and vectorised.

The agent's one tariff: the energy ledger bills by it and the site controller caps and plans charging
by the same instance (``Processor.tariff``), so billing and charging never disagree about a period.

    tariff = Tariff(config.processing.tariff, tz="Asia/Shanghai")
    tariff.period_at(ts_ms)  -> "peak" | "flat" | "valley" (names come from the config)
    tariff.price_at(ts_ms)   -> price per kWh in the tariff's currency

Schedules and prices may differ by month (``seasons``); the lookup is a (month, minute-of-day) table
of periods and a (month, period) table of prices.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .config import TariffConfig, TariffSegment


MS_HOUR = 3_600_000
MS_DAY = 86_400_000
_EPOCH = dt.date(1970, 1, 1)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _table(segments: tuple[TariffSegment, ...], names: list[str]) -> np.ndarray:
    """Period index for each minute of the day; every minute must be covered."""
    table = np.full(1440, -1, np.int16)
    for seg in segments:
        a, b = _minutes(seg.start), _minutes(seg.end)
        idx = names.index(seg.period)
        if a < b:
            table[a:b] = idx
        else:  # wraps past midnight (or a == b: the whole day)
            table[a:] = idx
            table[:b] = idx
    missing = np.flatnonzero(table < 0)
    if missing.size:
        m = int(missing[0])
        raise ValueError(f"tariff schedule leaves {m // 60:02d}:{m % 60:02d} without a period")
    return table


class Tariff:
    def __init__(self, config: TariffConfig | None = None, *, tz: str = "Asia/Shanghai"):
        if config is None:  # (the running agent hands its config's tariff: no model imported then)
            from .config import TariffConfig

            config = TariffConfig()
        self.config = config
        self.tz = zoneinfo.ZoneInfo(tz)
        self.periods: list[str] = list(self.config.prices)
        for season in self.config.seasons:  # a period priced only in some seasons (e.g. critical)
            self.periods += [p for p in season.prices or () if p not in self.periods]
        self.prices = np.array([self.config.prices.get(p, np.nan) for p in self.periods])  # outside seasons
        self._prices = np.tile(self.prices, (12, 1))  # [month - 1, period]; NaN: a period the month never uses
        weekday = _table(self.config.weekday, self.periods)
        holiday = _table(self.config.holiday, self.periods) if self.config.holiday else weekday
        self._weekday = np.tile(weekday, (12, 1))  # [month - 1, minute of day]
        self._holiday = np.tile(holiday, (12, 1))
        for season in self.config.seasons:
            wd = _table(season.weekday, self.periods)
            hd = _table(season.holiday, self.periods) if season.holiday else wd
            row = self.prices if season.prices is None else np.array([season.prices.get(p, np.nan) for p in self.periods])
            for m in season.months:
                self._weekday[m - 1] = wd
                self._holiday[m - 1] = hd
                self._prices[m - 1] = row
        self._holidays = np.array(sorted((d - _EPOCH).days for d in self.config.holidays), np.int64)
        self._offsets: dict[int, int] = {}

    @property
    def currency(self) -> str:
        return self.config.currency

    def _offset_ms(self, hour: int) -> int:
        off = self._offsets.get(hour)
        if off is None:
            if len(self._offsets) > 4096:
                self._offsets.clear()
            d = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).astimezone(self.tz)
            off = int(d.utcoffset().total_seconds() * 1000)
            self._offsets[hour] = off
        return off

    def local_ms(self, ts_ms: np.ndarray) -> np.ndarray:
        """Local wall-clock epoch ms (UTC ms + the zone's offset at that instant)."""
        ts_ms = np.asarray(ts_ms, np.int64)
        hours = ts_ms // MS_HOUR
        uniq, inv = np.unique(hours, return_inverse=True)
        offs = np.array([self._offset_ms(int(h)) for h in uniq], np.int64)
        return ts_ms + offs[inv].reshape(ts_ms.shape)

    def is_holiday_day(self, day: np.ndarray) -> np.ndarray:
        hol = np.isin(day, self._holidays)
        if self.config.weekend_is_holiday:
            hol |= ((day + 3) % 7) >= 5  # 1970-01-01 was a Thursday (Monday = 0)
        return hol

    def _lookup(self, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local month index 0-11, period index) of each timestamp."""
        loc = self.local_ms(ts_ms)
        day = loc // MS_DAY
        minute = (loc % MS_DAY) // 60_000
        month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
        return month, np.where(self.is_holiday_day(day), self._holiday[month, minute], self._weekday[month, minute])

    def period_index(self, ts_ms: np.ndarray) -> np.ndarray:
        return self._lookup(ts_ms)[1]

    def prices_at(self, ts_ms: np.ndarray) -> np.ndarray:
        month, idx = self._lookup(ts_ms)
        return self._prices[month, idx]

    def periods_and_prices_at(self, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Period index and price of each timestamp, from one lookup."""
        month, idx = self._lookup(ts_ms)
        return idx, self._prices[month, idx]

    def period_at(self, ts_ms: int) -> str:
        return self.periods[int(self.period_index(np.array([ts_ms]))[0])]

    def price_at(self, ts_ms: int) -> float:
        return float(self.prices_at(np.array([ts_ms]))[0])

    def local_day_start(self, ts_ms: int) -> int:
        """UTC epoch ms at which the local day containing ``ts_ms`` began."""
        d = dt.datetime.fromtimestamp(ts_ms / 1000, self.tz)
        start = dt.datetime(d.year, d.month, d.day, tzinfo=self.tz)
        return int(start.timestamp() * 1000)
