"""What a CJ/T 188 meter publishes, by profile (the meter type it is asked as and the 901F layout).

Counters declare how fast they can physically rise (``max_per_hour``): a water or gas volume by the
meter's largest flow, heat by its largest thermal power, working hours by the clock. A step beyond
that is held as a glitch until confirmed, as for electricity counters. Counters carry their
``medium`` (water, gas, heat, cooling): none of them is booked in the electricity ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import MetricKind, MetricSpec

from .codec import MeterType


@dataclass(frozen=True, slots=True)
class Profile:
    meter_type: MeterType
    family: str  # the 901F layout: water, heat, gas
    medium: str  # what the counters meter
    summary: str


PROFILES: dict[str, Profile] = {
    "water": Profile(MeterType.COLD_WATER, "water", "water", "cold water meter (10H)"),
    "hot_water": Profile(MeterType.HOT_WATER, "water", "water", "domestic hot water meter (11H)"),
    "heat": Profile(MeterType.HEAT, "heat", "heat", "heat meter (20H)"),
    "cooling": Profile(MeterType.COOLING, "heat", "cooling", "cooling energy meter (21H)"),
    "gas": Profile(MeterType.GAS, "gas", "gas", "gas meter (30H)"),
}

# status metrics every profile has
VALVE = MetricSpec("valve", "", MetricKind.STATE, "valve state (ST D0-D1): 0 open, 1 closed, 2 or 3 abnormal")
BATTERY_LOW = MetricSpec("battery_low", "", MetricKind.STATE, "battery voltage low (ST D2): 1 low, 0 normal")
STATUS = MetricSpec("status", "", MetricKind.STATE, "status word ST as sent (first byte low): vendor bits included")
CLOCK = MetricSpec("clock_offset", "s", MetricKind.GAUGE, "meter clock minus gateway clock, in the meter's time zone "
                   "(the settlement day follows the meter's clock)", anomaly=False)


def metrics(profile: str, *, max_flow: float, max_power: float, heat_unit: str, heat_factor: float) -> list[MetricSpec]:
    """The metrics of one meter; ``heat_factor`` converts kWh to ``heat_unit``."""
    p = PROFILES[profile]
    volume = MetricSpec("volume", "m3", MetricKind.COUNTER, f"cumulative {p.medium} volume (current)", valid_min=0.0,
                        max_per_hour=max_flow, medium=p.medium if p.family != "heat" else "")  # heating water circulates: not consumed
    settled = MetricSpec("volume_settlement", "m3", MetricKind.GAUGE, "cumulative volume on the last settlement day",
                         valid_min=0.0, anomaly=False)
    if p.family != "heat":
        return [volume, settled, VALVE, BATTERY_LOW, STATUS, CLOCK]
    name = "heat" if p.medium == "heat" else "cooling"
    return [
        MetricSpec(name, heat_unit, MetricKind.COUNTER, f"cumulative {name} energy (current)", valid_min=0.0,
                   max_per_hour=max_power * heat_factor, medium=p.medium),
        MetricSpec(f"{name}_settlement", heat_unit, MetricKind.GAUGE, f"cumulative {name} on the last settlement day",
                   valid_min=0.0, anomaly=False),
        MetricSpec("power", "kW", MetricKind.GAUGE, "thermal power", valid_min=0.0),
        MetricSpec("flow_rate", "m3/h", MetricKind.GAUGE, "flow rate", valid_min=0.0),
        volume,
        MetricSpec("supply_temperature", "degC", MetricKind.GAUGE, "supply (flow) water temperature",
                   valid_min=0.0, valid_max=150.0),
        MetricSpec("return_temperature", "degC", MetricKind.GAUGE, "return water temperature",
                   valid_min=0.0, valid_max=150.0),
        MetricSpec("working_hours", "h", MetricKind.COUNTER, "cumulative working time", valid_min=0.0,
                   max_per_hour=1.0, anomaly=False),
        VALVE, BATTERY_LOW, STATUS, CLOCK,
    ]
