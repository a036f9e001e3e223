"""A PV forecast for the charging plan: the clear-sky curve of the site's latitude and date, scaled by
what the array has recently delivered.

Clear sky: the sun's elevation from latitude, day of year and solar time (Cooper's declination, the
hour angle from UTC and longitude; the equation of time, at most ~16 min, is left out) and the
Haurwitz clear-sky irradiance GHI = 1098 sin(h) exp(-0.057 / sin(h)) W/m², times the array's peak
power per 1000 W/m².

Scale: each fresh PV reading taken while the clear sky gives at least 10 % of the array teaches the
ratio measured / clear sky, averaged exponentially over ``tau`` (readings while the inverter is
curtailed only raise it: the sun gives at least that). The forecast is ratio x clear sky: causal (only
past readings), and it follows the weather of the last hour or so. Without a ratio (nothing learned
yet) or with stale PV readings it forecasts no sun at all, so a plan that counts on it falls back to
the grid.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

MIN_SHARE = 0.1  # learn only while the clear sky gives at least this share of the array


def clear_sky_w(ts_ms: np.ndarray, *, lat_deg: float, lon_deg: float, peak_w: float) -> np.ndarray:
    """Clear-sky PV power (W) of an array of ``peak_w`` at UTC epoch ms ``ts_ms``."""
    ts = np.asarray(ts_ms, np.float64) / 1000.0
    day = np.floor(ts / 86_400.0)
    first = np.floor(day.min()) if day.size else 0.0
    jan1 = dt.datetime.fromtimestamp(first * 86_400, dt.UTC).timetuple().tm_yday - 1  # days since 1 Jan of day 0
    doy = (day - first + jan1) % 365 + 1  # within a plan's horizon a year boundary is the only wrap
    solar_h = (ts / 3600.0 + lon_deg / 15.0) % 24.0
    decl = math.radians(23.45) * np.sin(2 * math.pi * (284 + doy) / 365)
    lat = math.radians(lat_deg)
    ha = np.radians(15.0 * (solar_h - 12.0))
    s = np.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(ha)
    ghi = np.where(s > 0.01, 1098.0 * s * np.exp(-0.057 / np.maximum(s, 0.01)), 0.0)
    return peak_w * ghi / 1000.0


@dataclass
class PvForecast:
    lat_deg: float
    lon_deg: float
    peak_w: float
    tau_s: float = 3600.0
    ratio: float | None = None  # measured / clear sky, recent average
    last_ms: int = 0  # when the ratio last learned

    def clear(self, ts_ms: np.ndarray) -> np.ndarray:
        return clear_sky_w(ts_ms, lat_deg=self.lat_deg, lon_deg=self.lon_deg, peak_w=self.peak_w)

    def observe(self, ts_ms: int, pv_w: float, *, curtailed: bool = False) -> None:
        """Learn from one fresh PV reading; while the inverter is curtailed it is only a lower bound."""
        if ts_ms <= self.last_ms or not math.isfinite(pv_w):
            return
        cs = float(self.clear(np.array([ts_ms]))[0])
        if cs < MIN_SHARE * self.peak_w:
            return
        r = min(1.2, max(0.0, pv_w / cs))
        if curtailed and self.ratio is not None and r <= self.ratio:
            return
        if self.ratio is None:
            self.ratio = r
        else:
            a = 1.0 - math.exp(-(ts_ms - self.last_ms) / 1000.0 / self.tau_s)
            self.ratio += a * (r - self.ratio)
        self.last_ms = ts_ms

    def power_w(self, ts_ms: np.ndarray, *, fresh: bool = True) -> np.ndarray:
        """Expected PV power (W) at ``ts_ms``: none when the readings are stale or nothing is learned yet."""
        if not fresh or self.ratio is None:
            return np.zeros(np.shape(ts_ms))
        return self.ratio * self.clear(ts_ms)

    def slot_energy_wh(self, starts_ms: np.ndarray, seconds: np.ndarray, load_w: float, *,
                       fresh: bool = True) -> np.ndarray:
        """Expected surplus (PV beyond ``load_w``, the site's own load) per plan slot, in Wh; PV
        sampled at each slot's quarter points."""
        out = np.zeros(np.shape(starts_ms))
        for q in (0.125, 0.375, 0.625, 0.875):
            t = starts_ms + (seconds * 1000 * q).astype(np.int64)
            out += np.maximum(0.0, self.power_w(t, fresh=fresh) - max(0.0, load_w)) / 4
        return out * seconds / 3600.0
