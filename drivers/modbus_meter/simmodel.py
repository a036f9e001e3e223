"""Slowly varying, physically consistent meter values for the simulators.

Voltage wanders around 230 V, power follows a daily load curve (night base, morning and
evening peaks), currents follow from power, energy counters only ever increase, frequency
stays near 50 Hz, CO2 follows room occupancy. Metrics are recognised by their unit and name,
so every profile (and inline register maps) get sensible values.
"""

from __future__ import annotations

import math
import random

SQRT3 = math.sqrt(3.0)


def load_curve(hour: float) -> float:
    """Fraction of peak load at a time of day (0..24 h): base 0.2, peaks at 08:00 and 19:00."""
    morning = math.exp(-((hour - 8.0) ** 2) / 2.0)
    evening = math.exp(-((hour - 19.0) ** 2) / 4.5)
    return 0.2 + 0.5 * morning + 0.8 * evening


class MeterModel:
    """State of one simulated device; ``t`` is seconds since midnight of the simulated day."""

    def __init__(self, *, seed: int = 0, start_hour: float = 12.0, peak_w: float = 6000.0):
        rng = random.Random(seed)
        self.t = start_hour * 3600.0
        self.peak_w = peak_w * (0.8 + 0.4 * rng.random())
        self.phase_share = (0.40, 0.35, 0.25)
        self.phase = rng.random() * 2 * math.pi
        self.energy: dict[str, float] = {}
        self.energy_seed = 1000.0 + 9000.0 * rng.random()
        self.pf = 0.95
        self.load = 1.0  # a multiplier for load steps (appliances switching), see MeterSimHandle.load_step

    # -- instantaneous quantities ----------------------------------------------------------
    def power(self) -> float:
        wiggle = 1.0 + 0.03 * math.sin(self.t / 97.0 + self.phase)
        return self.peak_w * self.load * load_curve((self.t / 3600.0) % 24.0) * wiggle

    def voltage(self, k: int = 0) -> float:
        return 230.0 + 3.0 * math.sin(self.t / 600.0 + self.phase + k) + 0.5 * math.sin(self.t / 7.0 + k)

    def frequency(self) -> float:
        return 50.0 + 0.03 * math.sin(self.t / 45.0 + self.phase)

    def co2(self) -> float:
        hour = (self.t / 3600.0) % 24.0
        occupied = 1.0 if 8.0 <= hour <= 17.0 else 0.0
        return 420.0 + 500.0 * occupied * (0.6 + 0.4 * math.sin(self.t / 1800.0 + self.phase) ** 2)

    def advance(self, seconds: float) -> None:
        """Move time on; energy counters integrate power over the interval (never decrease)."""
        if seconds <= 0:
            return
        e_kwh = self.power() * seconds / 3.6e6
        for key in list(self.energy):
            self.energy[key] += e_kwh * self._energy_share(key)
        self.t += seconds

    def _energy_share(self, key: str) -> float:
        share = self._phase_share(key) if _phase_of(key) is not None else 1.0
        if "export" in key:
            share *= 0.05
        if "reactive" in key or "apparent" in key:
            share *= math.tan(math.acos(self.pf)) if "reactive" in key else 1.0 / self.pf
        return share

    def _phase_share(self, name: str) -> float:
        k = _phase_of(name)
        return 1.0 if k is None else self.phase_share[k]

    # -- by metric -------------------------------------------------------------------------
    def value(self, name: str, unit: str) -> float:
        k = _phase_of(name) or 0
        share = self._phase_share(name)
        p = self.power() * share
        if unit in ("kWh", "kvarh", "kVAh"):
            if name not in self.energy:
                self.energy[name] = self.energy_seed * self._energy_share(name)
            return self.energy[name]
        if unit == "V":
            v = self.voltage(k) if not _is_line_to_line(name) else SQRT3 * self.voltage(k)
            return v
        if unit == "Hz":
            return self.frequency()
        if unit == "W":
            return -p * 0.02 if "export" in name else p
        if unit == "VA":
            return p / self.pf
        if unit == "var":
            return p * math.tan(math.acos(self.pf))
        if unit == "A":
            if "neutral" in name:
                return 0.4
            return p / (self.voltage(k) * self.pf) if _phase_of(name) is not None or "avg" not in name else \
                self.power() / 3 / (self.voltage(0) * self.pf)
        if unit == "deg":
            return math.degrees(math.acos(self.pf))
        if unit == "%":
            return 2.0 + 0.5 * k
        if unit == "ppm":
            return self.co2()
        if name.startswith("power_factor"):
            return self.pf
        return 0.0


def _phase_of(name: str) -> int | None:
    for k, tag in enumerate(("l1", "l2", "l3")):
        if name.endswith("_" + tag):
            return k
    for k, tag in enumerate(("l1_l2", "l2_l3", "l3_l1")):
        if tag in name:
            return k
    return None


def _is_line_to_line(name: str) -> bool:
    return any(p in name for p in ("l1_l2", "l2_l3", "l3_l1", "ll_avg"))
