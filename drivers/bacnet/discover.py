"""Find BACnet devices (Who-Is / I-Am) and their points (object-list, then names and units by
ReadPropertyMultiple): what ``edge-agent scan --protocol bacnet`` prints as config."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from .link import make_app
from .objects import TYPES, unit_of


@dataclass
class FoundPoint:
    name: str  # a metric name made from the object-name
    object: str  # "analog-input,4"
    unit: str
    value: float | str | None
    description: str = ""


@dataclass
class FoundDevice:
    instance: int
    address: str
    vendor: int | None
    name: str = ""
    points: list[FoundPoint] = field(default_factory=list)


def metric_name(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()[:48] or "point"
    if not base[0].isalnum():
        base = f"p{base}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


async def _points(app: Any, addr: Any, instance: int, per_request: int) -> tuple[str, list[FoundPoint]]:
    name = await app.read_property(addr, f"device,{instance}", "object-name")
    oids = [o for o in await app.read_property(addr, f"device,{instance}", "object-list") if str(o[0]) in TYPES]
    out: list[FoundPoint] = []
    taken: set[str] = set()
    for i in range(0, len(oids), per_request):
        args: list[Any] = []
        for o in oids[i:i + per_request]:
            props = ["object-name", "present-value", "description"]
            args += [f"{o[0]},{o[1]}", props + (["units"] if str(o[0]).startswith("analog") else [])]
        props_of: dict[str, dict[str, Any]] = {}
        for oid, prop, _idx, value in await app.read_property_multiple(addr, args):
            props_of.setdefault(f"{oid[0]},{oid[1]}", {})[str(prop)] = value
        for o in oids[i:i + per_request]:
            key = f"{o[0]},{o[1]}"
            p = props_of.get(key, {})
            ok = {k: v for k, v in p.items() if type(v).__name__ != "ErrorType"}
            units = unit_of(str(ok["units"])) if "units" in ok else ""
            pv = ok.get("present-value")
            value: float | str | None = float(pv) if isinstance(pv, int | float) else (str(pv) if pv is not None else None)
            out.append(FoundPoint(metric_name(str(ok.get("object-name", key)), taken), key, units or "", value,
                                  str(ok.get("description", ""))))
    return str(name), out


async def discover(local: str, target: str | None, *, low: int | None = None, high: int | None = None,
                   timeout: float = 3.0, per_request: int = 20) -> list[FoundDevice]:
    """Who-Is (to ``target`` host:port, or broadcast on the local network when None), then each
    answering device's points. ``local`` is the gateway's address ("host[/prefix][:port]")."""
    from bacpypes3.pdu import Address

    app = make_app("edge-agent-scan", 4194301, local)
    try:
        addr = Address(target) if target else None
        iams = await app.who_is(low, high, addr, timeout=timeout)
        found: list[FoundDevice] = []
        for iam in iams:
            inst = int(iam.iAmDeviceIdentifier[1])
            dev = FoundDevice(inst, str(iam.pduSource), int(iam.vendorID) if iam.vendorID is not None else None)
            dev.name, dev.points = await asyncio.wait_for(_points(app, iam.pduSource, inst, per_request), timeout * 10)
            found.append(dev)
        return found
    finally:
        app.close()
