"""Grid emission factors (kgCO2e per kWh): a cited table by region and year, a custom value, or hourly values.

    factors = CarbonFactors.from_config(processing_config)
    factors.factor_at(ts_ms) -> kgCO2e/kWh;  factors.factors_at(ts_ms_array) -> array

Sources of the table (values in kgCO2/kWh, used as CO2e):
  * "national-ets" 2022: 0.5703, the national grid average that the Ministry of Ecology and Environment
    set for power-sector emissions-trading reports (环办气候函〔2023〕43号, February 2023).
  * Ministry of Ecology and Environment with the National Bureau of Statistics, electricity CO2 emission
    factors (公告, 2024): national average 0.5568 (2021) and 0.5366 (2022); 2022 regional grid averages
    East China 0.5617 and South-West 0.2268. Other regions of that announcement are not listed here:
    they could not be checked when this table was written; give them as ``value`` if you need them.
An hourly file has one ``hour,factor`` line per local hour (0-23, a daily profile) or
``YYYY-MM-DDTHH:MM,factor`` lines (local time, exact hours); hours it does not cover use the fallback.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .config import ProcessingConfig

MS_HOUR = 3_600_000

FACTORS: dict[tuple[str, int], float] = {
    ("national-ets", 2022): 0.5703,
    ("national", 2021): 0.5568,
    ("national", 2022): 0.5366,
    ("east-china", 2022): 0.5617,
    ("south-west", 2022): 0.2268,
}


def table_factor(region: str, year: int) -> float:
    try:
        return FACTORS[(region, year)]
    except KeyError:
        known = ", ".join(f"{r} {y}" for r, y in sorted(FACTORS))
        raise ValueError(f"no emission factor for region {region!r} in {year} (known: {known})") from None


def read_hourly(path: Path, tz: zoneinfo.ZoneInfo) -> tuple[np.ndarray | None, dict[int, float]]:
    """A 24-hour profile (index = local hour) or exact hours (UTC hour start ms -> factor)."""
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
        return float(self.factors_at(np.array([ts_ms]))[0])
