"""Charger register profiles (TOML package data in ``profiles/``) and their codec.

A profile says where the IEC 61851 state is and how it is encoded, where each metric lives (type,
word order, scale to the metric's unit), how to set the current limit and enable, and which
heartbeat the controller needs. Addresses are offsets; the register is
``offset + connector x connector_stride`` (CHARX: 1000 per connector).
"""

from __future__ import annotations

import enum
import tomllib
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.contract import ConfigError, ProtocolError
from agent.contract.modbus_values import DataType, WordOrder, decode, encode, register_count
from drivers.charger_common import IecState

VALUE_NAMES = {"current_l1", "current_l2", "current_l3", "voltage_l1", "voltage_l2", "voltage_l3", "power",
               "session_energy", "energy_total", "current_limit", "enabled", "error"}


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class StateEncoding(enum.StrEnum):
    ASCII_HIGH = "ascii_high"  # letter in the high byte (CHARX, Phoenix EV-SER)
    ASCII_LOW = "ascii_low"  # letter in the low byte (Phoenix EV-ETH)
    ABB = "abb"  # uint32, byte 2 & 0x7F: 0 A, 1 B1, 2 B2, 3 C1, 4 C2, 5 stopped
    KEBA = "keba"  # 1000 charging state + 1004 cable state (bit 2 = EV connected)


class Pause(enum.StrEnum):
    ZERO = "zero"  # a current setpoint of 0 pauses
    ENABLE = "enable"  # pause by clearing the enable register


class HeartbeatAction(enum.StrEnum):
    READ = "read"  # reading the state register is enough
    WRITE = "write"  # write ``value`` to ``address``


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


class ValueSpec(_M):
    name: str
    address: int
    dtype: DataType
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0

    @property
    def count(self) -> int:
        return register_count(self.dtype)


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


class Profile(_M):
    profile: Meta
    state: StateSpec
    values: tuple[ValueSpec, ...] = ()
    current: CurrentSpec
    enable: EnableSpec | None = None
    heartbeat: HeartbeatSpec | None = None

    def offset(self, connector: int) -> int:
        return connector * self.profile.connector_stride


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


# --- codec -----------------------------------------------------------------------------------
ABB_STATES = {0: IecState.A, 1: IecState.B, 2: IecState.B, 3: IecState.B, 4: IecState.C, 5: IecState.B}
ABB_CODES = {IecState.A: 0, IecState.B: 2, IecState.C: 4}


def decode_state(spec: StateSpec, regs: list[int], cable: list[int] | None = None) -> IecState:
    """Registers of the state (and KEBA cable state) -> IEC state. Raises ProtocolError on nonsense."""
    if spec.encoding in (StateEncoding.ASCII_HIGH, StateEncoding.ASCII_LOW):
        byte = regs[0] >> 8 if spec.encoding is StateEncoding.ASCII_HIGH else regs[0] & 0xFF
        st = IecState.parse(chr(byte)) if 0x20 < byte < 0x7F else IecState.UNKNOWN
        if st is IecState.UNKNOWN:
            raise ProtocolError(f"state register holds {regs[0]:#06x}, not an IEC 61851 letter")
        return st
    if spec.encoding is StateEncoding.ABB:
        code = (regs[1] >> 8) & 0x7F
        if code not in ABB_STATES:
            raise ProtocolError(f"ABB charging state {code} is not one of 0-5")
        return ABB_STATES[code]
    charging = decode(regs, spec.dtype)
    cable_state = decode(cable or [0, 0], spec.dtype)
    if charging == 4:
        return IecState.F
    if not int(cable_state) & 0b100:
        return IecState.A
    return IecState.C if charging == 3 else IecState.B


def encode_state(spec: StateSpec, state: IecState) -> tuple[list[int], list[int] | None]:
    """The simulator's side of :func:`decode_state`."""
    if spec.encoding is StateEncoding.ASCII_HIGH:
        return [ord(state.name) << 8], None
    if spec.encoding is StateEncoding.ASCII_LOW:
        return [ord(state.name)], None
    if spec.encoding is StateEncoding.ABB:
        return [0, ABB_CODES.get(state, 0) << 8], None
    charging = {IecState.A: 2, IecState.B: 2, IecState.C: 3, IecState.F: 4}.get(state, 1)
    cable = 7 if state in (IecState.B, IecState.C) else 0
    return encode(charging, spec.dtype), encode(cable, spec.dtype)


def decode_value(spec: ValueSpec, regs: list[int]) -> float:
    return float(decode(regs, spec.dtype, spec.order)) * spec.scale


def encode_value(spec: ValueSpec, value: float) -> list[int]:
    raw = value / spec.scale
    return encode(round(raw) if spec.dtype not in (DataType.FLOAT32, DataType.FLOAT64) else raw, spec.dtype, spec.order)


def encode_current(spec: CurrentSpec, amps: float) -> list[int]:
    raw = int(amps * spec.scale + 1e-9)  # never round a limit up
    return encode(raw, spec.dtype, spec.order)


def decode_current(spec: CurrentSpec, regs: list[int]) -> float:
    return float(decode(regs, spec.dtype, spec.order)) / spec.scale
