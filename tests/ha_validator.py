"""Checks a Home Assistant MQTT discovery message the way Home Assistant would accept it.

Written from Home Assistant's documented rules for device-based discovery and sensors:
topic ``<prefix>/device/[<node_id>/]<object_id>/config`` with ids of ``[a-zA-Z0-9_-]``; a JSON
object with a ``device`` (``dev``) block holding identifiers or connections, an ``origin`` (``o``)
block with a name, ``components`` (``cmps``) each with a ``platform`` (``p``) and a ``unique_id``
that no other entity has; a state topic and availability; and for sensors a device class that
accepts the unit and the state class (the sensor component's tables). Abbreviated keys are expanded
first, as Home Assistant does.
"""

from __future__ import annotations

import re

import orjson

ABBREVIATIONS = {
    "dev": "device", "o": "origin", "cmps": "components", "cmp": "components", "p": "platform",
    "avty": "availability", "avty_t": "availability_topic", "avty_mode": "availability_mode",
    "stat_t": "state_topic", "uniq_id": "unique_id", "dev_cla": "device_class", "stat_cla": "state_class",
    "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template", "t": "topic",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "sug_dsp_prc": "suggested_display_precision",
}
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "cns": "connections", "mf": "manufacturer", "mdl": "model",
                        "sw": "sw_version", "hw": "hw_version", "sn": "serial_number", "sa": "suggested_area"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
SHARED_ONLY = {"device", "origin"}  # may not be overridden in a component
PLATFORMS = {"sensor", "binary_sensor", "switch", "number", "select", "button", "text", "light", "climate",
             "cover", "fan", "lock", "event", "update", "valve", "water_heater", "device_tracker"}
ID = re.compile(r"^[a-zA-Z0-9_-]+$")

# Home Assistant's sensor tables (the classes this agent may emit and their neighbours)
DEVICE_CLASS_UNITS: dict[str, set[str | None]] = {
    "apparent_power": {"mVA", "VA", "kVA"},
    "carbon_dioxide": {"ppm"},
    "current": {"A", "mA"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "humidity": {"%"},
    "pm1": {"µg/m³"}, "pm10": {"µg/m³"}, "pm25": {"µg/m³"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "power_factor": {"%", None},
    "pressure": {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "reactive_power": {"mvar", "var", "kvar"},
    "temperature": {"°C", "°F", "K"},
    "voltage": {"µV", "mV", "V", "kV", "MV"},
    "volume": {"L", "mL", "gal", "fl. oz.", "m³", "ft³", "CCF", "MCF"},
    "volume_flow_rate": {"m³/h", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/min", "mL/s"},
    "water": {"L", "gal", "m³", "ft³", "CCF", "MCF"},
    "gas": {"m³", "ft³", "CCF", "MCF"},
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
DEVICE_CLASS_STATE_CLASSES: dict[str, set[str]] = {
    **{c: {"measurement"} for c in DEVICE_CLASS_UNITS},
    "energy": {"total", "total_increasing"},
    "volume": {"total", "total_increasing"},
    "water": {"total", "total_increasing"},
    "gas": {"total", "total_increasing"},
}


def expand(d: dict, table: dict[str, str] = ABBREVIATIONS) -> dict:
    return {table.get(k, k): v for k, v in d.items()}


def config_topic_problem(topic: str, prefix: str = "homeassistant") -> str | None:
    parts = topic.split("/")
    if parts[0] != prefix or parts[-1] != "config" or len(parts) not in (4, 5) or parts[1] != "device":
        return f"{topic}: not <prefix>/device/[<node_id>/]<object_id>/config"
    bad = [p for p in parts[2:-1] if not ID.match(p)]
    return f"{topic}: ids may hold only [a-zA-Z0-9_-], got {bad}" if bad else None


def validate_sensor(where: str, comp: dict) -> list[str]:
    problems = []
    dc, sc, unit = comp.get("device_class"), comp.get("state_class"), comp.get("unit_of_measurement")
    if sc is not None and sc not in STATE_CLASSES:
        problems.append(f"{where}: unknown state_class {sc!r}")
    if dc is not None:
        if dc not in DEVICE_CLASS_UNITS:
            problems.append(f"{where}: unknown device_class {dc!r}")
        else:
            if unit not in DEVICE_CLASS_UNITS[dc]:
                problems.append(f"{where}: unit {unit!r} is not valid for device_class {dc}")
            if sc is not None and sc not in DEVICE_CLASS_STATE_CLASSES[dc]:
                problems.append(f"{where}: state_class {sc} is impossible with device_class {dc}")
    if dc == "energy" and sc not in ("total", "total_increasing"):
        problems.append(f"{where}: energy needs state_class total or total_increasing for the Energy dashboard")
    if "value_template" in comp and "{{" not in comp["value_template"]:
        problems.append(f"{where}: value_template is not a template")
    return problems


def validate_discovery(topic: str, payload: bytes, seen_unique_ids: set[str], *,
                       prefix: str = "homeassistant") -> list[str]:
    """Problems with one device-based discovery message (empty list: Home Assistant accepts it)."""
    problems = [p for p in [config_topic_problem(topic, prefix)] if p]
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        return [*problems, f"{topic}: payload is not JSON: {e}"]
    if not isinstance(body, dict):
        return [*problems, f"{topic}: payload is not a JSON object"]
    body = expand(body)
    device = expand(body.get("device") or {}, DEVICE_ABBREVIATIONS)
    if not (device.get("identifiers") or device.get("connections")):
        problems.append(f"{topic}: device needs identifiers or connections")
    origin = expand(body.get("origin") or {}, ORIGIN_ABBREVIATIONS)
    if not origin.get("name"):
        problems.append(f"{topic}: origin (o) with a name is required")
    components = body.get("components")
    if not isinstance(components, dict) or not components:
        return [*problems, f"{topic}: components (cmps) must be a non-empty mapping"]
    shared_availability = body.get("availability") or body.get("availability_topic")
    for cid, raw in components.items():
        where = f"{topic} component {cid}"
        if not ID.match(cid):
            problems.append(f"{where}: component id may hold only [a-zA-Z0-9_-]")
        comp = expand(raw)
        if SHARED_ONLY & comp.keys():
            problems.append(f"{where}: device and origin may only be given once, at the root")
        platform = comp.get("platform")
        if platform not in PLATFORMS:
            problems.append(f"{where}: platform {platform!r} is missing or unknown")
        uid = comp.get("unique_id")
        if not uid:
            problems.append(f"{where}: unique_id is required")
        elif uid in seen_unique_ids:
            problems.append(f"{where}: unique_id {uid!r} is used by another entity")
        else:
            seen_unique_ids.add(uid)
        state = comp.get("state_topic") or body.get("state_topic")
        if not state or any(c in state for c in "#+"):
            problems.append(f"{where}: a state_topic without wildcards is required")
        availability = comp.get("availability") or comp.get("availability_topic") or shared_availability
        if not availability:
            problems.append(f"{where}: no availability topic")
        elif isinstance(availability, list):
            for a in availability:
                if not expand(a).get("topic"):
                    problems.append(f"{where}: availability entry without a topic")
        if platform == "sensor":
            problems += validate_sensor(where, comp)
    return problems
