"""Inverter register profiles (TOML package data in ``profiles/``), validated with pydantic; what they
do (decoding, writes, block reads) is in :mod:`.registers`, which the run time uses on their plain twins.

A profile names its source document and version, how to recognise the device (``[identify]``), the
registers it reads (``[[registers]]``: fc, address, type, word order, scale to the metric's unit) and its
writable points (``[[points]]``). A point is either a ``setpoint`` (``set``: the registers a write puts,
in order) or a ``battery`` power (``charge``/``discharge``/``stop`` sequences chosen by the value's sign).
A write step puts a constant (``value``) or the written value times ``scale`` (of its magnitude for a
battery). Bounds are numbers or come from the device's config (``high_from``).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.contract import ConfigError, MetricKind
from agent.contract.modbus_values import DataType, WordOrder

from .registers import (
    IdentifyBase,
    PointBase,
    PointKind,
    ProfileBase,
    PvInverterBase,
    RegisterBase,
    StepBase,
    blocks,
)

NAME = r"^[a-z][a-z0-9_]{0,63}$"


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Meta(_M):
    name: str = Field(pattern=NAME)
    summary: str
    source: str = Field(description="The vendor document and version the map comes from.")
    checked: str = Field(description="The public source every register was checked against.")
    default_unit: int = Field(1, ge=1, le=247)
    max_registers: int = Field(64, ge=1, le=125)
    max_gap: int = Field(8, ge=0, le=125)
    unverified: tuple[str, ...] = Field((), description="Registers or points no public source confirmed.")


class Identify(IdentifyBase, _M):
    fc: Literal[3, 4] = 3
    address: int = Field(ge=0, le=0xFFFF)
    count: int = Field(1, ge=1, le=32)
    text_prefix: str | None = None  # the registers hold ASCII starting with this
    high_byte: tuple[int, ...] = ()  # or: the first register's high byte is one of these


class Register(RegisterBase, _M):
    name: str = Field(pattern=NAME)
    fc: Literal[3, 4] = 3
    address: int = Field(ge=0, le=0xFFFF)
    type: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    unit: str = ""
    kind: MetricKind = MetricKind.GAUGE
    description: str = ""


class Step(StepBase, _M):
    address: int = Field(ge=0, le=0xFFFF)
    type: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    value: int | None = None  # a constant; else the written value (its magnitude for a battery) x scale
    scale: float = 1.0


class PointSpec(PointBase, _M):
    name: str = Field(pattern=NAME)
    kind: PointKind
    unit: str = ""
    low: float | None = None
    high: float | None = None
    high_from: Literal["battery_max_w", "export_max_w"] | None = None
    meaning: str = ""
    set: tuple[Step, ...] = ()
    charge: tuple[Step, ...] = ()
    discharge: tuple[Step, ...] = ()
    stop: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _steps(self) -> PointSpec:
        if self.kind is PointKind.SETPOINT and not self.set:
            raise ValueError(f"point {self.name}: a setpoint needs set = [...]")
        if self.kind is PointKind.BATTERY and not (self.charge and self.discharge and self.stop):
            raise ValueError(f"point {self.name}: a battery point needs charge, discharge and stop")
        return self


class Profile(ProfileBase, _M):
    profile: Meta
    identify: Identify
    registers: tuple[Register, ...]
    points: tuple[PointSpec, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Profile:
        names = [r.name for r in self.registers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"register name(s) {', '.join(dup)} repeated")
        return self


def profile_names() -> list[str]:
    files = resources.files(__package__).joinpath("profiles")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


@cache
def load_profile(name: str) -> Profile:
    """A shipped profile by name; ConfigError naming the problem."""
    if name not in profile_names():
        import difflib  # only when a suggestion is built: not loaded by a running agent
        close = difflib.get_close_matches(name, profile_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError([f"unknown inverter profile {name!r} (known: {', '.join(profile_names())}){hint}"])
    text = resources.files(__package__).joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")
    try:
        return Profile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as e:
        raise ConfigError([f"inverter profile {name}.toml: {e}"]) from None


def register_table(prof: Profile) -> str:
    """The profile's registers as the Markdown table docs/drivers/pv_inverter.md carries."""
    rows = ["| metric | FC address | type | scale | unit | what |", "|---|---|---|---|---|---|"]
    for r in prof.registers:
        order = f" {r.order.value}" if r.count > 1 and r.order is not WordOrder.ABCD else ""
        rows.append(f"| `{r.name}` | {r.fc:02d} {r.address} | {r.type.value}{order} | {r.scale:g} | {r.unit or '—'} "
                    f"| {r.description} |")
    return "\n".join(rows)


__all__ = ["NAME", "Identify", "Meta", "PointKind", "PointSpec", "Profile", "PvInverterBase", "Register", "Step", "blocks",
           "load_profile", "profile_names", "register_table"]
