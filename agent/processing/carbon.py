"""Grid emission factors (kgCO2e per kWh): a cited table by region and year, a custom value, or hourly values.

    factors = CarbonFactors.from_config(processing_config)
    factors.factor_at(ts_ms) -> kgCO2e/kWh;  factors.factors_at(ts_ms_array) -> array

The default (``emission_factor`` and an empty ``[processing.carbon]`` alike) is ``DEFAULT_FACTOR``:
the national grid average for 2023 from the newest announcement of the series below, the one its
publishers give for accounting the CO2 of electricity consumption.

Sources of the table (values in kgCO2/kWh, used as CO2e):
  * Ministry of Ecology and Environment (MEE) with the National Bureau of Statistics (NBS), average
    electricity CO2 emission factors by grid, "供核算电力消费的二氧化碳排放量时参考使用":
    - 《关于发布2021年电力二氧化碳排放因子的公告》(公告2024年第12号, 2024-04-12): national 0.5568 (2021);
    - 《关于发布2022年电力二氧化碳排放因子的公告》(2024-12-20): national 0.5366, East China 0.5617,
      South-West 0.2268 (2022); its other regions could not be checked and are not listed;
    - 《关于发布2023年电力二氧化碳排放因子的公告》(January 2026): national 0.5306; North China 0.6361,
      North-East 0.5122, East China 0.5500, Central China 0.5271, North-West 0.5543, South 0.4042,
      South-West 0.2472 (2023), as reported by 光明日报 and 中国电力报 (January 2026) from the
      announcement; the announcement's own tables could not be opened here.
  * "national-ets" 2022: 0.5703, the national grid average that the MEE set for emissions-trading
    reports (环办气候函〔2023〕43号, February 2023): a different purpose, so not the default.
An hourly file has one ``hour,factor`` line per local hour (0-23, a daily profile) or
``YYYY-MM-DDTHH:MM,factor`` lines (local time, exact hours); hours it does not cover use the fallback.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .config import ProcessingConfig

MS_HOUR = 3_600_000

FACTORS: dict[tuple[str, int], float] = {
    ("national-ets", 2022): 0.5703,
    ("national", 2021): 0.5568,
    ("national", 2022): 0.5366,
    ("east-china", 2022): 0.5617,
    ("south-west", 2022): 0.2268,
    ("national", 2023): 0.5306,
    ("north-china", 2023): 0.6361,
    ("north-east", 2023): 0.5122,
    ("east-china", 2023): 0.5500,
    ("central-china", 2023): 0.5271,
    ("north-west", 2023): 0.5543,
    ("south", 2023): 0.4042,
    ("south-west", 2023): 0.2472,
}
DEFAULT_REGION, DEFAULT_YEAR = "national", 2023
DEFAULT_FACTOR = FACTORS[(DEFAULT_REGION, DEFAULT_YEAR)]


def table_factor(region: str, year: int | None = None) -> float:
    """The table's factor for ``region`` in ``year`` (None: the newest year the table has for it)."""
    if year is None:
        years = [y for r, y in FACTORS if r == region]
        year = max(years) if years else DEFAULT_YEAR
    try:
        return FACTORS[(region, year)]
    except KeyError:
        known = ", ".join(f"{r} {y}" for r, y in sorted(FACTORS))
        raise ValueError(f"no emission factor for region {region!r} in {year} (known: {known})") from None


def read_hourly(path: Path, tz: zoneinfo.ZoneInfo) -> tuple[np.ndarray | None, dict[int, float]]:
    """A 24-hour profile (index = local hour) or exact hours (UTC hour start ms -> factor)."""
    import numpy as np  # here: validating a config without an hourly file needs no numpy

    profile = np.full(24, np.nan)
    exact: dict[int, float] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot read hourly emission factors: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.lower().startswith(("hour", "time")):
            continue
        try:
            key, value = (x.strip() for x in line.split(","))
            factor = float(value)
            if not 0 <= factor < 5:
                raise ValueError(f"factor {factor} is outside 0-5 kgCO2e/kWh")
            if key.isdigit():
                if not 0 <= int(key) <= 23:
                    raise ValueError(f"hour {key} is outside 0-23")
                profile[int(key)] = factor
            else:
                t = dt.datetime.fromisoformat(key).replace(tzinfo=tz)
                exact[int(t.timestamp() * 1000) // MS_HOUR * MS_HOUR] = factor
        except ValueError as e:
            raise ValueError(f"{path}:{n}: {e}") from None
    if np.isnan(profile).all():
        return None, exact
    if np.isnan(profile).any():
        raise ValueError(f"{path}: the hourly profile misses hours {np.flatnonzero(np.isnan(profile)).tolist()}")
    return profile, exact


class CarbonFactors:
    def __init__(self, value: float, *, tz: str = "Asia/Shanghai", hourly: Path | None = None):
        self.value = value
        self.tz = zoneinfo.ZoneInfo(tz)
        self.profile, self.exact = read_hourly(hourly, self.tz) if hourly is not None else (None, {})

    @classmethod
    def from_config(cls, pc: ProcessingConfig) -> CarbonFactors:
        c = pc.carbon
        if c is None:
            return cls(pc.emission_factor, tz=pc.timezone)
        value = c.value if c.value is not None else table_factor(c.region, c.year)
        return cls(value, tz=pc.timezone, hourly=c.hourly_file)

    def factors_at(self, ts_ms: np.ndarray) -> np.ndarray:
        import numpy as np

        ts = np.asarray(ts_ms, np.int64)
        out = np.full(ts.shape, self.value, np.float64)
        if self.profile is not None:
            offs = np.array([dt.datetime.fromtimestamp(int(t) // 1000, self.tz).utcoffset().total_seconds() * 1000
                             for t in ts.ravel()], np.int64).reshape(ts.shape)
            out = self.profile[((ts + offs) // MS_HOUR) % 24]
        if self.exact:
            hours = ts // MS_HOUR * MS_HOUR
            for i, h in enumerate(hours.ravel()):
                f = self.exact.get(int(h))
                if f is not None:
                    out.ravel()[i] = f
        return out

    def factor_at(self, ts_ms: int) -> float:
        return float(self.factors_at([ts_ms])[0])
