"""DL/T 645-2007 and -1997 on top of the shared frame skeleton: addresses, requests, replies, values.

Addresses are 12 BCD digits sent low byte first; data identifiers (DI) are 4 bytes (2007) or 2
bytes (1997), sent DI0 first; values are BCD, low byte first, the top bit of the top byte the sign
where the format is signed. A meter answers a read with control 91H (2007; B1H when follow-up
frames hold the rest, fetched with 12H) or 81H (1997), and an error with D1H / C1H and one error byte.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from agent.contract import DeviceException, FrameScan, ProtocolError, Scanner
from drivers.meter_common import frame as fr

LAYOUT = fr.Layout("DL/T 645", address_len=6)
BROADCAST = bytes((0x99,)) * 6  # broadcast time sync: no meter answers
WILDCARD = bytes((0xAA,)) * 6  # read address: valid only with one meter on the line


class Edition(enum.StrEnum):
    V2007 = "2007"
    V1997 = "1997"


class Control(enum.IntEnum):
    BROADCAST_TIME = 0x08
    READ = 0x11  # 2007
    READ_FOLLOW = 0x12  # 2007: the next part of a long reply
    READ_ADDRESS = 0x13  # 2007
    WRITE = 0x14
    READ_1997 = 0x01
    READ_FOLLOW_1997 = 0x02


REPLY = 0x80  # set in every slave's answer
ERROR = 0x40  # set with REPLY in an error answer
FOLLOWS = 0x20  # set in a 2007 reply when follow-up frames hold more data

ERROR_BITS = {0x01: "other error", 0x02: "no data requested (identifier not supported)",
              0x04: "password wrong / not authorised", 0x08: "baud rate cannot be changed",
              0x10: "year time zones exceeded", 0x20: "day periods exceeded", 0x40: "tariffs exceeded"}


class MeterError(DeviceException):
    """The meter answered with an error reply (D1H / C1H)."""

    def __init__(self, code: int, what: str):
        names = [t for bit, t in ERROR_BITS.items() if code & bit] or [f"code {code:02X}"]
        super().__init__(f"meter refused {what}: {', '.join(names)}", code=code)
        self.code: int = code


def parse_address(text: str) -> bytes:
    """'123456781012' (as on the nameplate) -> the 6 wire bytes, low byte first."""
    t = text.strip()
    if len(t) != 12 or not t.isdigit():
        raise ValueError(f"a DL/T 645 address is 12 digits, got {text!r}")
    return bytes(int(t[i:i + 2], 16) for i in range(10, -1, -2))


def format_address(wire: bytes) -> str:
    """The 6 wire bytes -> '123456781012'; raises ProtocolError when not BCD."""
    text = "".join(f"{b:02X}" for b in reversed(wire))
    if not text.isdigit():
        raise ProtocolError(f"meter address {wire.hex(' ')} is not BCD")
    return text


def di_bytes(di: int, edition: Edition) -> bytes:
    size = 4 if edition is Edition.V2007 else 2
    if not 0 <= di < 1 << 8 * size:
        raise ValueError(f"identifier {di:X} is not a DL/T 645-{edition.value} identifier ({size} bytes)")
    return di.to_bytes(size, "little")


def read_control(edition: Edition) -> int:
    return Control.READ if edition is Edition.V2007 else Control.READ_1997


def read_request(address: bytes, di: int, edition: Edition = Edition.V2007, *, wake: int = 4) -> bytes:
    return fr.encode(LAYOUT, address, read_control(edition), di_bytes(di, edition), wake=wake)


def follow_request(address: bytes, di: int, seq: int, *, wake: int = 4) -> bytes:
    """2007 read follow-up (12H): DI and the frame sequence number."""
    return fr.encode(LAYOUT, address, Control.READ_FOLLOW, di_bytes(di, Edition.V2007) + bytes((seq & 0xFF,)), wake=wake)


def address_request(*, wake: int = 4) -> bytes:
    return fr.encode(LAYOUT, WILDCARD, Control.READ_ADDRESS, wake=wake)


def time_sync_request(when: datetime, *, wake: int = 4) -> bytes:
    """Broadcast time sync (08H to 99…99): ss mm hh DD MM YY, BCD; no meter answers."""
    fields = (when.second, when.minute, when.hour, when.day, when.month, when.year % 100)
    return fr.encode(LAYOUT, BROADCAST, Control.BROADCAST_TIME, bytes(int(f"{v:02d}", 16) for v in fields), wake=wake)


def scan(buf: bytes | bytearray) -> FrameScan:
    return fr.scan(LAYOUT, buf)


def reply_expect(address: bytes, edition: Edition) -> fr.Expect:
    """The header of the reply to a read (or follow-up read) of the meter at ``address``: a read
    reply with at least the DI, or an error reply."""
    functions = frozenset({read_control(edition), Control.READ_FOLLOW if edition is Edition.V2007
                           else Control.READ_FOLLOW_1997})
    return fr.Expect(address, functions, 0x1F, 4 if edition is Edition.V2007 else 2)


def reply_scan(address: bytes, edition: Edition) -> Scanner:
    """The scanner for that reply: once its header has arrived it is waited for whole, whatever its
    data holds (see :func:`drivers.meter_common.frame.scan`)."""
    return partial(fr.scan, LAYOUT, expect=reply_expect(address, edition))


def decode(raw: bytes) -> fr.Frame:
    return fr.decode(LAYOUT, raw)


@dataclass(frozen=True, slots=True)
class ReadReply:
    data: bytes  # the value bytes, after the DI
    more: bool  # 2007: follow-up frames hold the rest


def parse_read_reply(f: fr.Frame, di: int, edition: Edition = Edition.V2007) -> ReadReply:
    """The value bytes of a read reply to ``di``; MeterError for an error reply, ProtocolError for
    anything else."""
    base = read_control(edition)
    if f.control & 0x1F not in (base, Control.READ_FOLLOW if edition is Edition.V2007 else Control.READ_FOLLOW_1997):
        raise ProtocolError(f"reply control {f.control:02X} does not answer a read")
    if not f.control & REPLY:
        raise ProtocolError(f"control {f.control:02X} is a request, not a reply")
    if f.control & ERROR:
        raise MeterError(f.data[0] if f.data else 0, f"identifier {di:0{8 if edition is Edition.V2007 else 4}X}")
    want = di_bytes(di, edition)
    if f.data[:len(want)] != want:
        raise ProtocolError(f"reply is for identifier {f.data[:len(want)][::-1].hex().upper() or 'none'}, "
                            f"asked {want[::-1].hex().upper()}")
    return ReadReply(f.data[len(want):], bool(f.control & FOLLOWS))


@dataclass(frozen=True, slots=True)
class Fmt:
    """A BCD value: ``size`` bytes, ``decimals`` digits after the point, the top bit a sign if ``signed``."""

    size: int
    decimals: int
    signed: bool = False

    def decode(self, data: bytes) -> float:
        if len(data) < self.size:
            raise ProtocolError(f"value needs {self.size} bytes, got {len(data)}")
        raw = bytearray(data[:self.size])
        negative = False
        if self.signed and raw[-1] & 0x80:
            negative, raw[-1] = True, raw[-1] & 0x7F
        text = "".join(f"{b:02X}" for b in reversed(raw))
        if not text.isdigit():
            raise ProtocolError(f"value {bytes(data[:self.size]).hex(' ')} is not BCD")
        value = int(text) / 10 ** self.decimals
        return -value if negative else value

    def encode(self, value: float) -> bytes:
        digits = 2 * self.size
        n = round(abs(value) * 10 ** self.decimals)
        limit = 8 * 10 ** (digits - 1) if self.signed else 10 ** digits  # signed: the top bit is the sign
        if n >= limit:
            raise ValueError(f"{value} does not fit {digits} BCD digits with {self.decimals} decimals")
        text = f"{n:0{digits}d}"
        out = bytearray(int(text[i:i + 2], 16) for i in range(digits - 2, -1, -2))
        if self.signed and value < 0:
            out[-1] |= 0x80
        return bytes(out)
