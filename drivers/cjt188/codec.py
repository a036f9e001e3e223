"""CJ/T 188 (2004/2018) on the DL/T 645 frame skeleton: ``[FE…] 68 T A0..A6 C L DI0 DI1 SER … CS 16``.

T is the meter type (10H cold water … 20H heat … 30H gas), the address 7 bytes BCD, low byte first
(5 bytes number, 2 bytes manufacturer), the data bytes travel as they are (no +33H). A read of DI
901F (C 01H) is answered with C 81H and the metering data; a refusal with C C1H, SER and the status
word. Every value is BCD, low byte first; a quantity is followed by its unit code (``UNITS``).

Meters differ in the DI byte order they echo (``1F 90`` as the standard says, ``90 1F`` seen in the
field): replies are accepted in either order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from agent.contract import DeviceException, FrameScan, ProtocolError, Scanner
from drivers.meter_common import frame as fr

LAYOUT = fr.Layout("CJ/T 188", address_len=7, type_byte=True, second_start=False, data_offset=0, max_data=100)
WILDCARD = bytes((0xAA,)) * 7  # read address: valid only with one meter on the line
ANY_TYPE = 0xAA


class MeterType(enum.IntEnum):
    COLD_WATER = 0x10
    HOT_WATER = 0x11
    DRINKING_WATER = 0x12
    RECLAIMED_WATER = 0x13
    HEAT = 0x20
    COOLING = 0x21
    GAS = 0x30
    ELECTRICITY = 0x40


class Control(enum.IntEnum):
    READ = 0x01
    READ_ADDRESS = 0x03
    WRITE = 0x04


REPLY = 0x80
ERROR = 0x40
DI_READ = 0x901F
DI_ADDRESS = 0x810A


def family(meter_type: int) -> str:
    """'water', 'heat' or 'gas': which 901F layout a meter type answers with."""
    if 0x10 <= meter_type <= 0x19:
        return "water"
    if 0x20 <= meter_type <= 0x29:
        return "heat"
    if 0x30 <= meter_type <= 0x39:
        return "gas"
    raise ProtocolError(f"meter type {meter_type:02X}H is not a water (1xH), heat (2xH) or gas (3xH) meter")


class Dim(enum.StrEnum):
    ENERGY = "kWh"
    POWER = "kW"
    VOLUME = "m3"
    FLOW = "m3/h"


# unit code -> (dimension, factor to the dimension's unit above)
UNITS: dict[int, tuple[Dim, float]] = {
    0x01: (Dim.ENERGY, 1 / 3.6e6), 0x02: (Dim.ENERGY, 1e-3), 0x05: (Dim.ENERGY, 1.0), 0x08: (Dim.ENERGY, 1e3),
    0x0A: (Dim.ENERGY, 1e5), 0x0B: (Dim.ENERGY, 1 / 3600), 0x0E: (Dim.ENERGY, 1 / 3.6),
    0x11: (Dim.ENERGY, 1e3 / 3.6), 0x13: (Dim.ENERGY, 1e5 / 3.6),
    0x14: (Dim.POWER, 1e-3), 0x17: (Dim.POWER, 1.0), 0x1A: (Dim.POWER, 1e3),
    0x29: (Dim.VOLUME, 1e-3), 0x2C: (Dim.VOLUME, 1.0),
    0x32: (Dim.FLOW, 1e-3), 0x35: (Dim.FLOW, 1.0),
}
UNIT_NAMES = {0x01: "J", 0x02: "Wh", 0x05: "kWh", 0x08: "MWh", 0x0A: "MWh x 100", 0x0B: "kJ", 0x0E: "MJ",
              0x11: "GJ", 0x13: "GJ x 100", 0x14: "W", 0x17: "kW", 0x1A: "MW", 0x29: "L", 0x2C: "m3",
              0x32: "L/h", 0x35: "m3/h"}
# a heat metric published in one of these units: factor from kWh
HEAT_UNITS = {"kWh": 1.0, "MWh": 1e-3, "GJ": 3.6e-3}

VALVE_STATES = {0b00: "open", 0b01: "closed", 0b10: "abnormal", 0b11: "abnormal"}


class MeterError(DeviceException):
    """The meter refused the request (C1H and its status word)."""

    def __init__(self, status: int, what: str):
        super().__init__(f"meter refused {what} (status {status:04X})", code=status)
        self.status = status


def parse_address(text: str) -> bytes:
    """'12345678901234' (as on the nameplate, 14 hex digits) -> the 7 wire bytes, low byte first."""
    t = text.strip().upper()
    if len(t) != 14 or any(c not in "0123456789ABCDEF" for c in t):
        raise ValueError(f"a CJ/T 188 address is 14 digits as on the nameplate (0-9, A-F in the manufacturer "
                         f"code), got {text!r}")
    return bytes(int(t[i:i + 2], 16) for i in range(12, -1, -2))


def format_address(wire: bytes) -> str:
    return "".join(f"{b:02X}" for b in reversed(wire))


def read_request(meter_type: int, address: bytes, ser: int, *, di: int = DI_READ, wake: int = 4) -> bytes:
    return fr.encode(LAYOUT, address, Control.READ, di.to_bytes(2, "little") + bytes((ser & 0xFF,)),
                     meter_type=meter_type, wake=wake)


def address_request(ser: int = 0, *, wake: int = 4) -> bytes:
    """Read address (03H, DI 810A) to AA…AA with meter type AAH: one meter on the line only."""
    return fr.encode(LAYOUT, WILDCARD, Control.READ_ADDRESS, DI_ADDRESS.to_bytes(2, "little") + bytes((ser & 0xFF,)),
                     meter_type=ANY_TYPE, wake=wake)


def scan(buf: bytes | bytearray) -> FrameScan:
    return fr.scan(LAYOUT, buf)


def reply_expect(address: bytes, fam: str) -> fr.Expect:
    """The header of the reply to a 901F read of the ``fam`` meter at ``address``: C 81H with at
    least the layout's data, or C1H."""
    return fr.Expect(address, frozenset({Control.READ}), 0x3F, reply_len(fam))


def reply_scan(address: bytes, fam: str) -> Scanner:
    """The scanner for that reply: once its header has arrived it is waited for whole, whatever its
    data holds (see :func:`drivers.meter_common.frame.scan`)."""
    return partial(fr.scan, LAYOUT, expect=reply_expect(address, fam))


def decode(raw: bytes) -> fr.Frame:
    return fr.decode(LAYOUT, raw)


def di_matches(data: bytes, di: int) -> bool:
    """The data starts with ``di`` in either byte order."""
    return len(data) >= 2 and data[:2] in (di.to_bytes(2, "little"), di.to_bytes(2, "big"))


def bcd(data: bytes, what: str) -> int:
    text = "".join(f"{b:02X}" for b in reversed(data))
    if not text.isdigit():
        raise ProtocolError(f"{what} {data.hex(' ')} is not BCD")
    return int(text)


def encode_bcd(n: int, size: int) -> bytes:
    text = f"{n:0{2 * size}d}"
    if len(text) > 2 * size:
        raise ValueError(f"{n} does not fit {2 * size} BCD digits")
    return bytes(int(text[i:i + 2], 16) for i in range(2 * size - 2, -1, -2))


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    size: int  # value bytes (a unit byte follows when ``dim`` is set)
    decimals: int
    dim: Dim | None = None

    @property
    def width(self) -> int:
        return self.size + (self.dim is not None)


WATER = (Field("volume", 4, 2, Dim.VOLUME), Field("volume_settlement", 4, 2, Dim.VOLUME))
HEAT = (Field("heat_settlement", 4, 2, Dim.ENERGY), Field("heat", 4, 2, Dim.ENERGY), Field("power", 4, 2, Dim.POWER),
        Field("flow_rate", 4, 4, Dim.FLOW), Field("volume", 4, 2, Dim.VOLUME), Field("supply_temperature", 3, 2),
        Field("return_temperature", 3, 2), Field("working_hours", 3, 0))
LAYOUTS = {"water": WATER, "gas": WATER, "heat": HEAT}
TIME_LEN, ST_LEN = 7, 2


def reply_len(fam: str) -> int:
    """Bytes of a 901F reply's data: DI, SER, the fields, the meter's clock, the status word."""
    return 3 + sum(f.width for f in LAYOUTS[fam]) + TIME_LEN + ST_LEN


@dataclass(frozen=True, slots=True)
class Reading:
    values: dict[str, float]  # energy in kWh, power kW, volume m3, flow m3/h, temperature degC, hours
    clock: datetime | None  # the meter's real-time clock (local time); None when it is not a date
    status: int  # ST: first byte low

    @property
    def valve(self) -> int:
        """0 open, 1 closed, 2/3 abnormal (ST bits D0-D1)."""
        return self.status & 0x03

    @property
    def battery_low(self) -> bool:
        return bool(self.status & 0x04)


def parse_clock(data: bytes) -> datetime | None:
    """ss mm hh DD MM YY(low) YY(high), BCD; None when it is not a valid date."""
    try:
        s, mi, h, d, mo, yl, yh = (bcd(bytes((b,)), "clock") for b in data[:TIME_LEN])
        return datetime(yh * 100 + yl, mo, d, h, mi, s)
    except (ProtocolError, ValueError):
        return None


def encode_clock(t: datetime) -> bytes:
    return b"".join(encode_bcd(v, 1) for v in (t.second, t.minute, t.hour, t.day, t.month, t.year % 100, t.year // 100))


def parse_read_reply(f: fr.Frame, fam: str, ser: int | None = None) -> Reading:
    """A 901F reply's values in canonical units; MeterError for a refusal, ProtocolError otherwise."""
    if f.control & 0x3F != Control.READ or not f.control & REPLY:
        raise ProtocolError(f"control {f.control:02X} does not answer a read")
    if f.control & ERROR:
        st = int.from_bytes(f.data[1:3], "little") if len(f.data) >= 3 else 0
        raise MeterError(st, f"read {DI_READ:04X}")
    if not di_matches(f.data, DI_READ):
        raise ProtocolError(f"reply is for identifier {f.data[:2].hex().upper() or 'none'}, asked {DI_READ:04X}")
    if ser is not None and len(f.data) > 2 and f.data[2] != ser & 0xFF:
        raise ProtocolError(f"reply carries sequence number {f.data[2]:02X}, asked {ser & 0xFF:02X}")
    want = reply_len(fam)
    if len(f.data) < want:
        other = next((k for k in ("water", "heat") if reply_len(k) == len(f.data)), None)
        hint = f" (the {other} meter layout: check the profile)" if other and other != fam else ""
        raise ProtocolError(f"{fam} meter reply has {len(f.data)} data bytes, needs {want}{hint}")
    i, values = 3, {}
    for fld in LAYOUTS[fam]:
        raw = f.data[i:i + fld.size]
        value = bcd(raw, fld.name) / 10 ** fld.decimals
        if fld.dim is not None:
            code = f.data[i + fld.size]
            dim, factor = UNITS.get(code, (None, 0.0))
            if dim is not fld.dim:
                name = UNIT_NAMES.get(code, "unknown")
                raise ProtocolError(f"{fld.name}: unit code {code:02X}H ({name}) is not a {fld.dim.value} unit")
            value *= factor
        values[fld.name] = value
        i += fld.width
    clock = parse_clock(f.data[i:i + TIME_LEN])
    status = int.from_bytes(f.data[i + TIME_LEN:i + TIME_LEN + ST_LEN], "little")
    return Reading(values, clock, status)


def encode_read_reply(meter_type: int, address: bytes, ser: int, values: dict[str, float], units: dict[str, int],
                      clock: datetime, status: int, *, wake: int = 2, di_order: str = "little") -> bytes:
    """A 901F reply (the simulator's side); ``values`` in canonical units, sent in ``units`` codes."""
    data = bytearray(DI_READ.to_bytes(2, di_order)) + bytes((ser & 0xFF,))  # type: ignore[arg-type]
    for fld in LAYOUTS[family(meter_type)]:
        v = values[fld.name]
        if fld.dim is not None:
            code = units[fld.name]
            v /= UNITS[code][1]
        data += encode_bcd(round(v * 10 ** fld.decimals), fld.size)
        if fld.dim is not None:
            data.append(code)
    data += encode_clock(clock) + status.to_bytes(2, "little")
    return fr.encode(LAYOUT, address, Control.READ | REPLY, bytes(data), meter_type=meter_type, wake=wake)
