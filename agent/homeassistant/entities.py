"""How one metric looks to Home Assistant: device class, state class and unit.

The mapping follows Home Assistant's sensor rules: a device class accepts only certain units and
state classes (energy: total or total_increasing; power, voltage and the like: measurement). A unit
the table does not know gets no device class, so Home Assistant never rejects the entity.

Lifetime energy counters use ``state_class: total``: Home Assistant reads any decrease of a
``total_increasing`` sensor as a meter reset, and a bad read must never look like one. Counters a
device restarts on purpose (a charging session's energy) are ``total_increasing``: there the drop
to zero is a real new cycle. A counter's ``medium`` picks the class the Energy dashboard files it
under: water and gas volumes as ``water`` and ``gas``, heat and cooling energy as ``energy``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.model import MetricKind, MetricSpec

# agent unit spelling -> Home Assistant's spelling (its unit constants)
UNIT_SPELLING = {
    "degC": "°C", "degF": "°F", "deg": "°", "ohm": "Ω", "ug/m3": "µg/m³", "µg/m3": "µg/m³",
    "m3": "m³", "m3/h": "m³/h", "l": "L", "kvarh": "kvarh", "kVAh": "kVAh",
}
ENERGY_UNITS = {"Wh", "kWh", "MWh", "MJ", "GJ"}
VOLUME_UNITS = {"m³", "L"}
# a counter's medium (MetricSpec.medium) -> the device class and the units Home Assistant takes for it
MEDIUM_CLASSES = {"water": ("water", {"m³", "L"}), "gas": ("gas", {"m³"})}
# gauges whose unit alone decides the device class
GAUGE_CLASSES = {
    "W": "power", "kW": "power", "MW": "power",
    "V": "voltage", "mV": "voltage", "kV": "voltage",
    "A": "current", "mA": "current",
    "Hz": "frequency", "kHz": "frequency",
    "VA": "apparent_power", "var": "reactive_power",
    "°C": "temperature", "°F": "temperature", "K": "temperature",
    "hPa": "pressure", "Pa": "pressure", "kPa": "pressure", "bar": "pressure", "mbar": "pressure",
    "m³/h": "volume_flow_rate", "L/min": "volume_flow_rate",
}
_PM = ((re.compile(r"^pm(1|1_0)(_|$)"), "pm1"), (re.compile(r"^pm(2_5|25)(_|$)"), "pm25"),
       (re.compile(r"^pm10(_|$)"), "pm10"))


@dataclass(frozen=True, slots=True)
class Entity:
    """The sensor fields of one metric; None means the key is left out of the discovery payload."""

    device_class: str | None
    state_class: str | None
    unit: str | None
    display_precision: int | None = None


def ha_unit(unit: str) -> str | None:
    unit = unit.strip()
    return UNIT_SPELLING.get(unit, unit) or None


def _gauge_class(name: str, unit: str | None) -> str | None:
    if unit is None:
        return "power_factor" if name.startswith("power_factor") else None
    if unit in GAUGE_CLASSES:
        return GAUGE_CLASSES[unit]
    if unit == "%":
        if "humid" in name:
            return "humidity"
        return "power_factor" if name.startswith("power_factor") else None
    if unit == "ppm":
        return "carbon_dioxide" if "co2" in name else None
    if unit == "µg/m³":
        return next((cls for pattern, cls in _PM if pattern.match(name)), None)
    return None


def entity_for(metric: MetricSpec) -> Entity:
    name, unit, kind = metric.name.lower(), ha_unit(metric.unit), MetricKind(metric.kind)
    if kind is MetricKind.STATE:
        # a coded state (IEC 61851 state, on/off): a number without statistics; the precision makes
        # Home Assistant treat it as numeric, so an empty value leaves the last state in place
        return Entity(None, None, unit, display_precision=0)
    if unit in ENERGY_UNITS:
        cycle = kind is MetricKind.COUNTER and metric.restarts
        return Entity("energy", "total_increasing" if cycle else "total", unit)
    if kind is MetricKind.COUNTER:
        cls, units = MEDIUM_CLASSES.get(metric.medium, ("volume", VOLUME_UNITS))
        return Entity(cls if unit in units else None, "total", unit)
    return Entity(_gauge_class(name, unit), "measurement", unit)


_WORDS = {"co2": "CO2", "thd": "THD", "pf": "PF", "avg": "average", "ll": "line-line"}


def display_name(metric: str) -> str:
    """``energy_import_l1`` -> ``Energy import L1``; ``pm2_5`` -> ``PM2.5``."""
    text = re.sub(r"pm(\d+)_(\d+)", r"PM\1.\2", metric)
    text = re.sub(r"pm(\d+)", r"PM\1", text)
    words = [_WORDS.get(w, w.upper() if re.fullmatch(r"l\d", w) else w) for w in re.split(r"[_.\-\s]+", text) if w]
    if not words:
        return metric
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])
