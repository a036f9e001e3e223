"""Charger register profiles (TOML package data in ``profiles/``), validated with pydantic; their codec
is in :mod:`.registers` (re-exported here), which the run time uses on the profile's plain twin.

A profile says where the IEC 61851 state is and how it is encoded, where each metric lives (type,
word order, scale to the metric's unit), how to set the current limit and enable, and which
heartbeat the controller needs. Addresses are offsets; the register is
``offset + connector x connector_stride`` (CHARX: 1000 per connector).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.contract import ConfigError
from agent.contract.modbus_values import DataType, WordOrder

from .registers import (
    ABB_CODES,
    ABB_STATES,
    VALUE_NAMES,
    HeartbeatAction,
    ModbusChargerBase,
    Pause,
    ProfileBase,
    StateEncoding,
    ValueBase,
    decode_current,
    decode_state,
    decode_value,
    encode_current,
    encode_state,
    encode_value,
)


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Meta(_M):
    name: str
    summary: str
    default_unit: int = Field(ge=0, le=255)
    connector_stride: int = 0
    read_fc: int = Field(3, ge=3, le=4)


class StateSpec(_M):
    address: int
    encoding: StateEncoding
    dtype: DataType = DataType.UINT16
    cable_address: int | None = None


class ValueSpec(ValueBase, _M):
    name: str
    address: int
    dtype: DataType
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0


class CurrentSpec(_M):
    address: int
    dtype: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0  # amps x scale = raw
    single: bool = False  # FC06 rather than FC16
    pause: Pause = Pause.ZERO
    readback: bool = True


class EnableSpec(_M):
    address: int
    on: int = 1
    off: int = 0
    single: bool = False
    readback: bool = True


class HeartbeatSpec(_M):
    action: HeartbeatAction
    interval: float = Field(gt=0)
    address: int | None = None
    value: int = 0
    single: bool = False


class Profile(ProfileBase, _M):
    profile: Meta
    state: StateSpec
    values: tuple[ValueSpec, ...] = ()
    current: CurrentSpec
    enable: EnableSpec | None = None
    heartbeat: HeartbeatSpec | None = None


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("profiles").iterdir() if p.name.endswith(".toml"))


@cache
def load_profile(name: str) -> Profile:
    if name not in profile_names():
        import difflib  # only when a suggestion is built: not loaded by a running agent
        close = difflib.get_close_matches(name, profile_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError([f"unknown charger profile {name!r} (known: {', '.join(profile_names())}){hint}"])
    text = resources.files(__package__).joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")
    try:
        prof = Profile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as e:
        raise ConfigError([f"charger profile {name}.toml: {e}"]) from None
    bad = [v.name for v in prof.values if v.name not in VALUE_NAMES]
    if bad:
        raise ConfigError([f"charger profile {name}.toml: unknown value names {bad}"])
    return prof


__all__ = ["ABB_CODES", "ABB_STATES", "VALUE_NAMES", "CurrentSpec", "EnableSpec", "HeartbeatAction", "HeartbeatSpec",
           "Meta", "ModbusChargerBase", "Pause", "Profile", "StateEncoding", "StateSpec", "ValueSpec", "decode_current",
           "decode_state", "decode_value", "encode_current", "encode_state", "encode_value", "load_profile",
           "profile_names"]
