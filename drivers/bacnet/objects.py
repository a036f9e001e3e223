"""BACnet object identifiers, engineering units and status flags in the agent's terms (no bacpypes3 here)."""

from __future__ import annotations

import re

from agent.contract import Point, PointKind, Quality

# object types the driver reads a present value from, with their short forms
TYPES = {"analog-input": "ai", "analog-output": "ao", "analog-value": "av", "binary-input": "bi",
         "binary-output": "bo", "binary-value": "bv", "multi-state-input": "msi", "multi-state-output": "mso",
         "multi-state-value": "msv"}
SHORT = {v: k for k, v in TYPES.items()}
COMMANDABLE = {"analog-output", "binary-output", "multi-state-output", "analog-value", "binary-value",
               "multi-state-value"}  # outputs always, values when the device gives them a priority array
_OID = re.compile(r"^\s*([a-z-]+)\s*[,:]\s*(\d{1,7})\s*$")

# BACnet EngineeringUnits (ASHRAE 135 clause 21) -> the agent's unit strings
UNITS = {
    "degreesCelsius": "degC", "degreesFahrenheit": "degF", "degreesKelvin": "K", "deltaDegreesFahrenheit": "K",
    "percent": "%", "percentRelativeHumidity": "%RH", "pascals": "Pa", "kilopascals": "kPa", "bars": "bar",
    "inchesOfWater": "inH2O", "partsPerMillion": "ppm", "volts": "V", "amperes": "A", "watts": "W",
    "kilowatts": "kW", "kilowattHours": "kWh", "megawattHours": "MWh", "hertz": "Hz", "noUnits": "",
    "cubicMetersPerHour": "m3/h", "cubicMetersPerSecond": "m3/s", "litersPerSecond": "l/s",
    "cubicMeters": "m3", "metersPerSecond": "m/s", "revolutionsPerMinute": "rpm", "powerFactor": "",
    "kilovoltAmperes": "kVA", "kilovoltAmperesReactive": "kvar", "luxes": "lx", "seconds": "s",
    "minutes": "min", "hours": "h", "joules": "J", "kilojoules": "kJ", "megajoules": "MJ", "gigajoules": "GJ",
}


_UNITS_KEY = {k.lower(): v for k, v in UNITS.items()}


class ObjectIdError(ValueError):
    pass


def parse_oid(text: str) -> tuple[str, int]:
    """``"analog-input,4"``, ``"ai:4"`` or ``"AI,4"`` -> ("analog-input", 4)."""
    m = _OID.match(text.lower())
    if not m:
        raise ObjectIdError(f"{text!r} is not an object identifier (e.g. \"analog-input,4\" or \"ai,4\")")
    otype, inst = SHORT.get(m.group(1), m.group(1)), int(m.group(2))
    if otype not in TYPES:
        raise ObjectIdError(f"{text!r}: object type {m.group(1)!r} has no present value to read "
                            f"(known: {', '.join(TYPES)} or {', '.join(SHORT)})")
    if inst >= 4194303:
        raise ObjectIdError(f"{text!r}: instance {inst} is out of range (0–4194302)")
    return otype, inst


def unit_of(bacnet_units: str | None) -> str | None:
    """The agent's unit for a BACnet engineering unit ("degreesCelsius" or "degrees-celsius"); an
    unit without a mapping keeps its BACnet name; None for None."""
    if bacnet_units is None:
        return None
    return _UNITS_KEY.get(bacnet_units.replace("-", "").lower(), bacnet_units)


def flags_quality(flags: object) -> int:
    """Quality bits for BACnet status flags [in-alarm, fault, overridden, out-of-service]."""
    bits = list(flags) if flags is not None else []  # type: ignore[call-overload]
    q = 0
    if len(bits) > 1 and bits[1]:
        q |= Quality.DEVICE_FLAGGED
    if len(bits) > 2 and bits[2]:
        q |= Quality.OVERRIDDEN
    if len(bits) > 3 and bits[3]:
        q |= Quality.OUT_OF_SERVICE
    return int(q)


def present_value(otype: str, value: object) -> float:
    """A present value as a float: binary active 1 / inactive 0, analog and multi-state as numbers."""
    if otype.startswith("binary"):
        return 1.0 if str(value).lower() in ("active", "1", "binarypv.active") or value == 1 else 0.0
    return float(value)  # type: ignore[arg-type]


class ObjectBase:
    """Mixin of :class:`~.config.ObjectConfig`."""

    @property
    def oid(self) -> tuple[str, int]:
        return parse_oid(self.object)


class BacnetBase:
    """Mixin of :class:`~.config.BacnetConfig`: the points it offers."""

    def points(self) -> list[Point]:
        """What commands may write (agent.contract.DeclaresPoints): each writable object, and its release."""
        out: list[Point] = []
        for name, obj in self.objects.items():
            otype = obj.oid[0]
            if otype not in COMMANDABLE:
                continue
            w = name in self.writable
            prio = obj.priority or self.priority
            if otype.startswith("binary"):
                out.append(Point(name, PointKind.SWITCH, writable=w, meaning=f"commands {obj.object} at priority {prio}"))
            else:
                out.append(Point(name, PointKind.NUMBER, unit=obj.unit, low=obj.low, high=obj.high, writable=w,
                                 integer=otype.startswith("multi-state"),
                                 meaning=f"commands {obj.object} at priority {prio}"))
            out.append(Point(f"{name}_release", PointKind.ACTION, writable=w,
                             meaning=f"relinquishes priority {prio} of {obj.object} (the next priority takes over)"))
        return out
