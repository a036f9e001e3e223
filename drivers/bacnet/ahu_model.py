"""A single-duct variable-air-volume air-handling unit: the physics behind the simulated AHU.

Outdoor air follows a day (cool night, warm afternoon); return air sits near the zone temperature.
The controller holds the supply-air temperature at its set-point with, in this order, the heating
valve, the economizer (outdoor-air damper) and the cooling valve (ASHRAE Guideline 36 sequencing:
heating, free cooling, free + mechanical cooling at 100 % outdoor air, mechanical cooling at minimum
outdoor air), and the fan speed holds the duct static pressure at its set-point.

Seeded faults change the plant, not the controller: a damper stuck at a position, a cooling valve
that leaks (cools with the valve commanded shut), a sensor reading with a bias. Values are what
the BACnet objects serve; ``commands`` are what the controller asks for (a BACnet write at a higher
priority than the controller's 16 replaces a command).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

FAN_HEAT = 0.6  # K: supply fan temperature rise at full speed (scales with speed)
COOL_CAPACITY = 16.0  # K of supply-air cooling at 100 % cooling valve
HEAT_CAPACITY = 25.0  # K of heating at 100 % heating valve
MIN_OA = 20.0  # % minimum outdoor-air damper position
ECON_HIGH_LIMIT = 20.0  # degC: no economizer above this outdoor temperature
STATIC_GAIN = 450.0  # Pa of duct static at 100 % fan speed with the boxes as they are


@dataclass
class Faults:
    stuck_damper: float | None = None  # % position the damper is stuck at
    cooling_leak: float = 0.0  # fraction of full cooling capacity passing a shut cooling valve
    bias: dict[str, float] = field(default_factory=dict)  # point name -> sensor bias (its unit)

    @classmethod
    def parse(cls, names: list[str] | tuple[str, ...]) -> Faults:
        """``stuck_damper[=POS]``, ``leaking_valve[=FRACTION]``, ``sensor_bias[=POINT:K]``."""
        f = cls()
        for raw in names:
            name, _, arg = raw.partition("=")
            try:
                if name == "stuck_damper":
                    f.stuck_damper = float(arg or 100.0)
                elif name == "leaking_valve":
                    f.cooling_leak = float(arg or 0.25)
                elif name == "sensor_bias":
                    point, _, k = (arg or "mat:-4").partition(":")
                    f.bias[point] = float(k)
                else:
                    raise ValueError(f"unknown fault {name!r} (known: stuck_damper, leaking_valve, sensor_bias)")
            except ValueError as e:
                if "unknown fault" in str(e):
                    raise
                raise ValueError(f"fault {raw!r}: {arg!r} is not a number") from None
        return f


@dataclass
class AhuModel:
    faults: Faults = field(default_factory=Faults)
    seed: int = 1
    oat_mean: float = 20.0  # degC daily mean outdoor temperature
    oat_swing: float = 16.0  # K peak to peak
    sat_sp: float = 13.0
    static_sp: float = 250.0  # Pa
    noise: float = 0.05  # K standard deviation of temperature sensor noise
    t: float = 0.0  # s since midnight of day 0
    overrides: dict[str, float] = field(default_factory=dict)  # command -> value written above priority 16
    values: dict[str, float] = field(default_factory=dict)
    commands: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._fan = 60.0
        self.step(0.0)

    def outdoor(self) -> float:
        hour = (self.t / 3600.0) % 24.0
        return self.oat_mean + self.oat_swing / 2 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)

    def _control(self, oat: float, rat: float, fan_heat: float) -> tuple[float, float, float]:
        """(damper %, cooling %, heating %) that hold SAT at its set-point, as sequenced by G36."""
        target_mat = self.sat_sp - fan_heat
        econ = oat < ECON_HIGH_LIMIT and oat < rat
        min_f = MIN_OA / 100.0
        mat_min_oa = min_f * oat + (1 - min_f) * rat
        if mat_min_oa < target_mat:  # heating: minimum outdoor air, heating valve
            return MIN_OA, 0.0, min(100.0, 100.0 * (target_mat - mat_min_oa) / HEAT_CAPACITY)
        if econ:
            f = min(1.0, (rat - target_mat) / (rat - oat))
            if f < 1.0:  # free cooling: the damper modulates
                return max(MIN_OA, 100.0 * f), 0.0, 0.0
            return 100.0, min(100.0, 100.0 * (oat - target_mat) / COOL_CAPACITY), 0.0
        return MIN_OA, min(100.0, 100.0 * (mat_min_oa - target_mat) / COOL_CAPACITY), 0.0

    def step(self, dt: float) -> dict[str, float]:
        """Advance ``dt`` seconds; returns the values the objects serve now."""
        self.t += dt
        oat = self.outdoor()
        rat = 22.0 + 0.03 * (oat - 17.0)
        fan_heat = FAN_HEAT * self._fan / 100.0
        damper_cmd, cool_cmd, heat_cmd = self._control(oat, rat, fan_heat)
        # feedback: a leak the controller sees as a colder supply is met by less free cooling
        if self.faults.cooling_leak and cool_cmd == 0.0 and heat_cmd == 0.0 and damper_cmd > MIN_OA:
            leak_k = self.faults.cooling_leak * COOL_CAPACITY
            f = min(1.0, (rat - (self.sat_sp - fan_heat + leak_k)) / max(rat - oat, 1e-6))
            damper_cmd = max(MIN_OA, 100.0 * f)
        self.commands = {"damper": damper_cmd, "cooling_valve": cool_cmd, "heating_valve": heat_cmd,
                         "fan_speed": self._fan}
        cmd = {**self.commands, **self.overrides}
        damper = cmd["damper"] if self.faults.stuck_damper is None else self.faults.stuck_damper
        f = damper / 100.0
        mat = f * oat + (1 - f) * rat
        cooling = max(cmd["cooling_valve"] / 100.0, self.faults.cooling_leak) * COOL_CAPACITY
        sat = mat + fan_heat + cmd["heating_valve"] / 100.0 * HEAT_CAPACITY - cooling
        sat = max(sat, 4.0)  # the coil cannot cool below its chilled water
        # duct static: quadratic in fan speed; the fan follows a slow integral loop
        static = STATIC_GAIN * (cmd["fan_speed"] / 100.0) ** 2
        if "fan_speed" not in self.overrides:
            self._fan = min(100.0, max(20.0, self._fan + 0.05 * (self.static_sp - static)))
        n = self._rng.gauss
        values = {"oat": oat + n(0, self.noise), "rat": rat + n(0, self.noise), "mat": mat + n(0, self.noise),
                  "sat": sat + n(0, self.noise), "duct_static": static + n(0, 2.0),
                  "sat_sp": self.sat_sp, "duct_static_sp": self.static_sp,
                  "damper": cmd["damper"], "cooling_valve": cmd["cooling_valve"],
                  "heating_valve": cmd["heating_valve"], "fan_speed": cmd["fan_speed"],
                  "fan_status": 1.0}
        for point, b in self.faults.bias.items():
            if point in values:
                values[point] += b
        self.values = values
        return values
