"""What a charger profile says and how its registers read, without pydantic: the enums, the codec and
the mixins of the profile models (:mod:`.profile`, loaded at validation). The driver reads a
profile's plain twin (carried by the config's twin, see :class:`ModbusChargerBase`) through these.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from agent.contract import ProtocolError
from agent.contract.modbus_values import DataType, decode, encode, register_count
from drivers.charger_common.model import IecState

if TYPE_CHECKING:
    from .profile import CurrentSpec, Profile, StateSpec, ValueSpec

VALUE_NAMES = {"current_l1", "current_l2", "current_l3", "voltage_l1", "voltage_l2", "voltage_l3", "power",
               "session_energy", "energy_total", "current_limit", "enabled", "error"}


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


class ValueBase:
    """Mixin of :class:`~.profile.ValueSpec`."""

    @property
    def count(self) -> int:
        return register_count(self.dtype)


class ProfileBase:
    """Mixin of :class:`~.profile.Profile`."""

    def offset(self, connector: int) -> int:
        return connector * self.profile.connector_stride


class ModbusChargerBase:
    """Mixin of :class:`~.config.ModbusChargerConfig`: ``loaded_profile()`` is the model's
    :func:`~.profile.load_profile` result; its plain twin carries the profile as loaded at validation
    (``validated_profile``, from ``plain_extras``), so the run time never parses a profile."""

    def loaded_profile(self) -> Profile:
        return self.__dict__["validated_profile"]


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
