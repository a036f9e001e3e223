"""SunSpec model definitions, read from the SunSpec Alliance's JSON models that PyPI ``pysunspec2`` ships.

Only the JSON files are used (``sunspec2/models/json/model_<id>.json``); pysunspec2's own client is
never imported, so a gateway pays for reading one small JSON file per model it meets, not for the
library. Only a model's top-level (fixed) points are laid out: repeating groups are not read.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass

SUNS = (0x5375, 0x6E53)  # "SunS"
BASES = (40000, 0, 50000)  # where a SunSpec map may start, in the order devices most often use
END_ID = 0xFFFF

INVERTERS = frozenset({101, 102, 103, 111, 112, 113})
METERS = frozenset({201, 202, 203, 204})
STORAGE = frozenset({124, 802})
CONTROLS = frozenset({123, 704})
DER = frozenset({701, 702, 704, 713})  # IEEE 1547 DER models: AC measurement, capacity, AC controls, storage
SUPPORTED = frozenset({1}) | INVERTERS | METERS | STORAGE | CONTROLS | DER


@dataclass(frozen=True, slots=True)
class PointDef:
    name: str
    offset: int  # registers from the model's ID register
    size: int
    type: str  # SunSpec type: int16, uint16, acc32, float32, sunssf, enum16, bitfield32, string ...
    sf: str | int | None = None  # name of the scale-factor point, or a fixed exponent
    units: str = ""
    writable: bool = False


@dataclass(frozen=True, slots=True)
class ModelDef:
    id: int
    name: str
    label: str
    length: int  # registers after ID and L of the top-level points (the ones read)
    points: dict[str, PointDef]
    full_length: int = 0  # L with the fixed (non-repeating) groups too, as a device declares it


class ModelsUnavailable(LookupError):
    """The SunSpec model definitions are not installed."""


def _json_dir():  # noqa: ANN202 - an importlib.resources Traversable
    try:
        return importlib.resources.files("sunspec2").joinpath("models", "json")
    except ModuleNotFoundError:
        raise ModelsUnavailable("SunSpec model definitions missing: install the sunspec extra "
                                "(pip install 'edge-agent[sunspec]', which brings pysunspec2)") from None


@functools.cache
def model(model_id: int) -> ModelDef:
    """The fixed block of SunSpec model ``model_id``; KeyError when the package has no such model."""
    path = _json_dir().joinpath(f"model_{model_id}.json")
    if not path.is_file():
        raise KeyError(f"no SunSpec model definition {model_id}")
    group = json.loads(path.read_text("utf-8"))["group"]
    points: dict[str, PointDef] = {}
    off = 0
    for p in group["points"]:
        size = int(p.get("size", 1))
        points[p["name"]] = PointDef(p["name"], off, size, p["type"], p.get("sf"), p.get("units", "").strip(),
                                     p.get("access") == "RW")
        off += size
    fixed = sum(int(p.get("size", 1)) for g in group.get("groups", ()) if "count" not in g for p in g["points"])
    return ModelDef(model_id, group["name"], group.get("label", group["name"]), off - 2, points, off - 2 + fixed)


def family(model_id: int) -> str:
    """inverter, meter, storage, battery, controls, capacity, common or other: a config reads one model
    per family (701 is an inverter, 713 a battery, 704 controls, as their 1xx/8xx counterparts)."""
    if model_id in INVERTERS or model_id == 701:
        return "inverter"
    if model_id in METERS:
        return "meter"
    if model_id in STORAGE or model_id == 713:
        return "storage" if model_id == 124 else "battery"
    if model_id == 702:
        return "capacity"
    if model_id in CONTROLS:
        return "controls"
    return "common" if model_id == 1 else "other"
