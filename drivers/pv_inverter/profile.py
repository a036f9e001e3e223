"""Inverter register profiles (TOML package data in ``profiles/``) and their codec.

A profile names its source document and version, how to recognise the device (``[identify]``), the
registers it reads (``[[registers]]``: fc, address, type, word order, scale to the metric's unit) and its
writable points (``[[points]]``). A point is either a ``setpoint`` (``set``: the registers a write puts,
in order) or a ``battery`` power (``charge``/``discharge``/``stop`` sequences chosen by the value's sign).
A write step puts a constant (``value``) or the written value times ``scale`` (of its magnitude for a
battery). Bounds are numbers or come from the device's config (``high_from``).
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.contract import ConfigError, MetricKind, MetricSpec
from agent.contract.modbus_values import DataType, WordOrder, decode, encode, register_count

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


class Identify(_M):
    fc: Literal[3, 4] = 3
    address: int = Field(ge=0, le=0xFFFF)
    count: int = Field(1, ge=1, le=32)
    text_prefix: str | None = None  # the registers hold ASCII starting with this
    high_byte: tuple[int, ...] = ()  # or: the first register's high byte is one of these

    def matches(self, regs: Sequence[int]) -> tuple[bool, str]:
        """Whether ``regs`` (read from ``address``) identify the device, and what was seen."""
        if self.text_prefix is not None:
            text = b"".join(w.to_bytes(2, "big") for w in regs).split(b"\0", 1)[0].decode("ascii", "replace").strip()
            return text.startswith(self.text_prefix), f"model {text!r}"
        code = regs[0] if regs else 0
        return (code >> 8) in self.high_byte, f"device type 0x{code:04X}"


class Register(_M):
    name: str = Field(pattern=NAME)
    fc: Literal[3, 4] = 3
    address: int = Field(ge=0, le=0xFFFF)
    type: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    unit: str = ""
    kind: MetricKind = MetricKind.GAUGE
    description: str = ""

    @property
    def count(self) -> int:
        return register_count(self.type)

    def metric(self) -> MetricSpec:
        return MetricSpec(self.name, self.unit, self.kind, self.description, anomaly=self.kind is MetricKind.GAUGE)

    def value(self, regs: Sequence[int]) -> float:
        return float(decode(regs, self.type, self.order)) * self.scale

    def raw_for(self, value: float) -> list[int]:
        """The registers a device holds for ``value`` (simulators)."""
        raw = value / self.scale
        return encode(raw if self.type in (DataType.FLOAT32, DataType.FLOAT64) else int(round(raw)), self.type, self.order)


class Step(_M):
    address: int = Field(ge=0, le=0xFFFF)
    type: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    value: int | None = None  # a constant; else the written value (its magnitude for a battery) x scale
    scale: float = 1.0

    def words(self, value: float) -> list[int]:
        """Registers for this step; ValueError when the value does not fit the type."""
        raw = self.value if self.value is not None else int(round(value * self.scale))
        return encode(raw, self.type, self.order)

    def reads(self, regs: Sequence[int]) -> float:
        """The written value back from the registers (simulators)."""
        return float(decode(regs, self.type, self.order)) / self.scale


class PointKind(enum.StrEnum):
    SETPOINT = "setpoint"
    BATTERY = "battery"


class PointSpec(_M):
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

    def largest(self) -> float:
        """The largest magnitude every register a write puts the value into can hold."""
        out = math.inf
        for s in (*self.set, *self.charge, *self.discharge):
            if s.value is None and s.type not in (DataType.FLOAT32, DataType.FLOAT64):
                signed = s.type in (DataType.INT16, DataType.INT32, DataType.INT64)
                out = min(out, ((1 << (16 * register_count(s.type) - signed)) - 1) / abs(s.scale))
        return out

    def steps(self, value: float) -> tuple[Step, ...]:
        if self.kind is PointKind.SETPOINT:
            return self.set
        return self.discharge if value > 0 else self.charge if value < 0 else self.stop


class Profile(_M):
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

    @property
    def name(self) -> str:
        return self.profile.name

    def point(self, name: str) -> PointSpec | None:
        return next((p for p in self.points if p.name == name), None)


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


def blocks(regs: Sequence[Register], *, max_registers: int, max_gap: int) -> list[tuple[int, int, int, list[Register]]]:
    """Block reads covering ``regs``: (fc, start, count, registers), neighbours merged when the hole
    between them is at most ``max_gap`` and the block stays within ``max_registers``."""
    out: list[tuple[int, int, int, list[Register]]] = []
    for fc in (3, 4):
        for r in sorted((r for r in regs if r.fc == fc), key=lambda r: r.address):
            if out and out[-1][0] == fc:
                _, start, count, members = out[-1]
                end = r.address + r.count
                if r.address - (start + count) <= max_gap and end - start <= max_registers:
                    out[-1] = (fc, start, max(count, end - start), [*members, r])
                    continue
            out.append((fc, r.address, r.count, [r]))
    return out

