"""Physics behind the SunSpec simulator: PV from a clear-sky curve with passing clouds, and a battery.

PV: the sun's elevation from latitude, day of year and solar time (Cooper's declination, hour angle),
the Haurwitz clear-sky irradiance GHI = 1098 sin(h) exp(-0.057 / sin(h)) W/m², times a cloud factor
that drifts between clear and overcast as clouds pass (a seeded random walk), times the array's peak
power per 1000 W/m². Battery: capacity, state of charge kept within [soc_min, soc_max], charge and
discharge limits, one-way efficiency sqrt(round trip), and a ramp limit on how fast its power moves
toward the set-point.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def sun_elevation(lat_deg: float, day_of_year: int, solar_hour: float) -> float:
    """Solar elevation (radians, negative below the horizon) at local solar time."""
    decl = math.radians(23.45) * math.sin(2 * math.pi * (284 + day_of_year) / 365)
    lat = math.radians(lat_deg)
    ha = math.radians(15.0 * (solar_hour - 12.0))
    s = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)
    return math.asin(max(-1.0, min(1.0, s)))


def clear_sky_ghi(elevation: float) -> float:
    """Haurwitz clear-sky global horizontal irradiance (W/m²)."""
    s = math.sin(elevation)
    return 0.0 if s <= 0.01 else 1098.0 * s * math.exp(-0.057 / s)


@dataclass
class PvArray:
    peak_w: float = 100_000.0
    lat_deg: float = 31.2  # Shanghai
    day_of_year: int = 172
    cloudiness: float = 0.0  # 0 sunny; 1 heavy passing cloud
    edge_every_s: float = 600.0  # mean seconds between cloud edges (at cloudiness 1)
    seed: int = 0
    _cloud: float = 1.0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def step_clouds(self, dt: float) -> None:
        """Clouds pass: the transmitted share walks between 1 (clear) and 1 - 0.8 * cloudiness."""
        if self.cloudiness <= 0:
            self._cloud = 1.0
            return
        floor = 1.0 - 0.8 * self.cloudiness
        self._cloud += self._rng.gauss(0.0, 0.08 * math.sqrt(max(dt, 0.0) / 60.0)) * self.cloudiness
        if self._rng.random() < min(1.0, dt / self.edge_every_s) * self.cloudiness:  # a cloud edge: a sudden step
            self._cloud = self._rng.uniform(floor, 1.0)
        self._cloud = min(1.0, max(floor, self._cloud))

    def power_w(self, solar_hour: float) -> float:
        ghi = clear_sky_ghi(sun_elevation(self.lat_deg, self.day_of_year, solar_hour))
        return self.peak_w * ghi / 1000.0 * self._cloud * 0.9  # 0.9: inverter and wiring losses


@dataclass
class Battery:
    capacity_wh: float = 200_000.0
    max_charge_w: float = 100_000.0
    max_discharge_w: float = 100_000.0
    round_trip: float = 0.90
    ramp_w_per_s: float = 20_000.0
    soc: float = 0.5  # 0..1
    soc_min: float = 0.10
    soc_max: float = 0.95
    setpoint_w: float = 0.0  # positive discharges, negative charges
    power_w: float = 0.0  # what it does now (AC side)
    charged_wh: float = 0.0
    discharged_wh: float = 0.0

    def _allowed(self, want: float) -> float:
        if want > 0:
            return 0.0 if self.soc <= self.soc_min else min(want, self.max_discharge_w)
        if want < 0:
            return 0.0 if self.soc >= self.soc_max else max(want, -self.max_charge_w)
        return 0.0

    def advance(self, dt: float) -> None:
        """Move power toward the set-point at the ramp rate, then integrate the state of charge; power
        stops at the state-of-charge bounds."""
        if dt <= 0:
            self.power_w = self._allowed(self.power_w)
            return
        target = self._allowed(self.setpoint_w)
        step = self.ramp_w_per_s * dt
        self.power_w = target if abs(target - self.power_w) <= step else self.power_w + math.copysign(step, target - self.power_w)
        eff = math.sqrt(self.round_trip)
        energy_ac = self.power_w * dt / 3600.0
        if energy_ac > 0:
            dc = energy_ac / eff
            room = (self.soc - self.soc_min) * self.capacity_wh
            dc = min(dc, max(room, 0.0))
            self.soc -= dc / self.capacity_wh
            self.discharged_wh += dc * eff
        elif energy_ac < 0:
            dc = -energy_ac * eff
            room = (self.soc_max - self.soc) * self.capacity_wh
            dc = min(dc, max(room, 0.0))
            self.soc += dc / self.capacity_wh
            self.charged_wh += dc / eff
        self.power_w = self._allowed(self.power_w)


class Plant:
    """PV, a battery and a load behind one grid connection, on a (scaled) clock: what a hybrid inverter
    measures, whichever register map serves it. ``limit_pct``/``limit_on`` cap the PV output (the export
    limit); ``battery.setpoint_w`` drives the battery; energy counters integrate on every ``advance``."""

    def __init__(self, *, pv: PvArray | None = None, battery: Battery | None = None,
                 load_w: Callable[[float], float] | float = 20_000.0, start_hour: float = 12.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.pv = pv or PvArray()
        self.battery = battery or Battery()
        self.load_w = load_w
        self.start_hour = start_hour
        self.speed = speed
        self._clock = clock
        self._t0 = clock()
        self._last = 0.0
        self.limit_pct = 100.0
        self.limit_on = False
        self.pv_wh = 0.0
        self.import_wh = 0.0
        self.export_wh = 0.0

    def now(self) -> float:
        return (self._clock() - self._t0) * self.speed

    def solar_hour(self, t: float | None = None) -> float:
        return self.start_hour + (self.now() if t is None else t) / 3600.0

    def load(self, t: float) -> float:
        return self.load_w(t) if callable(self.load_w) else float(self.load_w)

    def pv_available_w(self, t: float) -> float:
        return self.pv.power_w(self.solar_hour(t))

    def pv_w(self, t: float) -> float:
        avail = self.pv_available_w(t)
        return min(avail, self.pv.peak_w * self.limit_pct / 100.0) if self.limit_on else avail

    def advance(self) -> None:
        t = self.now()
        dt = max(0.0, t - self._last)
        self._last = t
        self.pv.step_clouds(dt)
        self.battery.advance(dt)
        pv = self.pv_w(t)
        grid = self.load(t) - pv - self.battery.power_w
        self.pv_wh += pv * dt / 3600.0
        self.import_wh += max(grid, 0.0) * dt / 3600.0
        self.export_wh += max(-grid, 0.0) * dt / 3600.0

    def grid_w(self) -> float:
        t = self.now()
        return self.load(t) - self.pv_w(t) - self.battery.power_w

    def state(self) -> int:
        """Inverter state as SunSpec 103 St counts it: 2 sleeping, 4 MPPT, 5 throttled."""
        t = self.now()
        avail, pv = self.pv_available_w(t), self.pv_w(t)
        return 2 if avail <= 0 else (5 if self.limit_on and avail > pv + 1 else 4)
