"""Register specs and the profile library (TOML files shipped as package data).

A register spec says where a value lives (fc, address), how it is encoded (type, word order)
and how to turn it into engineering units (value = raw * scale + offset).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from agent.contract import Frozen, MetricKind
from agent.contract.modbus_values import DataType, WordOrder

from .registers import ProfileBase, ProfileError, RegisterBase, check_registers

METRIC_NAME = r"^[a-z][a-z0-9_]{0,63}$"


def parse_address(v: object) -> object:
    """Accept 0x1E, 30, "0x001E" or "30"; other input is left for pydantic to reject."""
    if isinstance(v, str):
        try:
            return int(v.strip(), 0)
        except ValueError:
            raise ValueError(f"{v!r} is not an address (write 30 or \"0x1E\")") from None
    return v


class RegisterSpec(RegisterBase, Frozen):
    name: str = Field(pattern=METRIC_NAME, description="Metric name (snake_case, no unit suffix).")
    fc: Literal[3, 4] = Field(4, description="3 = holding registers, 4 = input registers.")
    address: int = Field(ge=0, le=0xFFFF, description="0-based PDU address (30001 in a manual = 0).")
    type: DataType = DataType.FLOAT32
    order: WordOrder = WordOrder.ABCD
    scale: float = Field(1.0, allow_inf_nan=False)
    offset: float = Field(0.0, allow_inf_nan=False)
    unit: str = ""
    kind: MetricKind = MetricKind.GAUGE
    base: str | None = Field(None, description="Profile base option this address is relative to.")
    flags: tuple[str, ...] = Field((), description="Metrics flagged DEVICE_FLAGGED when (raw & flag_mask) != 0.")
    flag_mask: int = Field(0xFFFF, ge=0, le=0xFFFFFFFF)
    valid_min: float | None = Field(None, allow_inf_nan=False, description="Lowest value the device can measure (out_of_range below).")
    valid_max: float | None = Field(None, allow_inf_nan=False, description="Highest value the device can measure (out_of_range above).")

    _addr = field_validator("address", mode="before")(parse_address)

    @model_validator(mode="after")
    def _fits(self) -> RegisterSpec:
        if self.address + self.count > 0x10000:
            raise ValueError(f"{self.type.value} at address {self.address} runs past 65535")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError(f"valid_min ({self.valid_min}) is greater than valid_max ({self.valid_max})")
        return self


class BaseOption(Frozen):
    default: int
    choices: tuple[int, ...]


class ProfileInfo(Frozen):
    name: str = Field(pattern=METRIC_NAME)
    summary: str
    max_registers: int = Field(ge=1, le=125)
    max_gap: int = Field(ge=0, le=125)
    default_unit: int = Field(1, ge=1, le=255)
    default_baudrate: int = 9600
    default_parity: Literal["N", "E", "O"] = "N"
    bases: dict[str, BaseOption] = Field(default_factory=dict)
    max_current: float | None = Field(None, gt=0, description="Highest current per phase the meter carries (its Imax), A.")
    voltage: float = Field(230.0, gt=0, description="Nominal phase voltage, V.")
    phases: Literal[1, 3] = 1
    anomaly: tuple[str, ...] | None = Field(None, description="Metrics that carry information of their own (the "
                                            "anomaly detector's default); others are derived or max-hold. Default: all.")


class Profile(ProfileBase, Frozen):
    profile: ProfileInfo
    registers: tuple[RegisterSpec, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        check_registers(self.registers)
        for r in self.registers:
            if r.base is not None and r.base not in self.profile.bases:
                raise ValueError(f"register {r.name!r} uses unknown base {r.base!r}")
        names = {r.name for r in self.registers}
        for m in self.profile.anomaly or ():
            if m not in names:
                raise ValueError(f"profile.anomaly names unknown register {m!r}")
        return self


@cache
def profile_names() -> tuple[str, ...]:
    files = resources.files(__package__).joinpath("profiles")
    return tuple(sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml")))


@cache
def load_profile(name: str) -> Profile:
    """Load a shipped profile by name. Raises ProfileError naming the problem."""
    if name not in profile_names():
        import difflib  # only when a suggestion is built: not loaded by a running agent
        close = difflib.get_close_matches(name, profile_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(profile_names())}){hint}")
    text = resources.files(__package__).joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")
    try:
        return parse_profile(text)
    except ProfileError as e:
        raise ProfileError(f"profile {name!r}: {e}") from None


def parse_profile(text: str) -> Profile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"TOML syntax error: {e}") from None
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ProfileError(f"{where}: {first['msg']}") from None


__all__ = ["METRIC_NAME", "BaseOption", "Profile", "ProfileError", "ProfileInfo", "RegisterSpec", "check_registers",
           "load_profile", "parse_address", "parse_profile", "profile_names"]
