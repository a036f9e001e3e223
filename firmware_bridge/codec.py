"""Messages of the firmware bridge protocol, version 1 (see docs/firmware-bridge.md).

Body layout: ``ver_flags`` (high nibble = protocol version 1; bit 0 = an address byte follows),
optional ``addr``, ``type``, then the type's payload. Integers are little-endian; strings are a
length byte followed by at most :data:`MAX_STR` bytes of UTF-8. A decoder rejects unknown types,
short payloads and trailing bytes, so both ends agree on exactly one encoding per message.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .framing import MAX_BODY, FrameError, unwrap, wrap

VERSION = 1
FLAG_ADDR = 0x01
MAX_STR = 32
MAX_VALUES = 32
MAX_LOG = MAX_BODY - 4  # LOG text bytes: one limit that fits an addressed frame too
RESERVED_FLAGS = 0x0E  # ver_flags bits 1-3: a frame with any of them set is rejected
# The standard units (docs/firmware-bridge.md, "Units"); the C firmware has the same list.
STANDARD_UNITS = frozenset(("", "degC", "%", "%RH", "Pa", "hPa", "kPa", "bar", "V", "mV", "A", "mA", "W", "kW",
                            "VA", "var", "Wh", "kWh", "Hz", "ppm", "ppb", "ug/m3", "lx", "m/s", "m", "mm", "L", "m3",
                            "L/min", "m3/h", "s", "ms", "dB", "dBA", "deg", "rpm"))


class MsgType(enum.IntEnum):
    HELLO = 0x01
    METRIC = 0x02
    DATA = 0x10
    ACK = 0x11
    TIME_REQ = 0x20
    TIME_RESP = 0x21
    COMMAND = 0x30
    RESULT = 0x31
    LOG = 0x40


class Op(enum.IntEnum):
    SET_INTERVAL = 1  # value: sampling interval in ms
    SET_OUTPUT = 2  # target: output index; value: 0 or 1
    DESCRIBE = 3  # resend HELLO and every METRIC


class Status(enum.IntEnum):
    OK = 0
    UNKNOWN_OP = 1
    BAD_VALUE = 2


class Kind(enum.IntEnum):
    GAUGE = 0
    COUNTER = 1
    STATE = 2


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE: ClassVar[MsgType] = MsgType.HELLO
    node_id: int
    boot_id: int
    interval_ms: int
    ring_capacity: int
    n_metrics: int
    fw_version: str


@dataclass(frozen=True, slots=True)
class Metric:
    TYPE: ClassVar[MsgType] = MsgType.METRIC
    index: int
    scale: int  # physical value = raw * 10**scale
    kind: int
    name: str
    unit: str


@dataclass(frozen=True, slots=True)
class Data:
    TYPE: ClassVar[MsgType] = MsgType.DATA
    boot_id: int
    seq: int
    node_ms: int
    values: tuple[tuple[int, int], ...]  # (metric index, raw int32)


@dataclass(frozen=True, slots=True)
class Ack:
    TYPE: ClassVar[MsgType] = MsgType.ACK
    boot_id: int
    seq: int  # cumulative: every reading of this boot with seq <= this one


@dataclass(frozen=True, slots=True)
class TimeReq:
    TYPE: ClassVar[MsgType] = MsgType.TIME_REQ
    token: int


@dataclass(frozen=True, slots=True)
class TimeResp:
    TYPE: ClassVar[MsgType] = MsgType.TIME_RESP
    token: int
    boot_id: int
    node_ms: int
    oldest_seq: int  # oldest seq still held (next seq when the ring is empty)
    dropped: int  # readings lost to ring overflow since boot


@dataclass(frozen=True, slots=True)
class Command:
    TYPE: ClassVar[MsgType] = MsgType.COMMAND
    id: int
    op: int
    target: int
    value: int


@dataclass(frozen=True, slots=True)
class Result:
    TYPE: ClassVar[MsgType] = MsgType.RESULT
    id: int
    status: int
    value: int


@dataclass(frozen=True, slots=True)
class Log:
    TYPE: ClassVar[MsgType] = MsgType.LOG
    level: int
    text: str


Message = Hello | Metric | Data | Ack | TimeReq | TimeResp | Command | Result | Log

# fixed-size leading fields per type (struct format, little-endian)
_FIXED: dict[MsgType, str] = {
    MsgType.HELLO: "<IIIHB", MsgType.METRIC: "<BbB", MsgType.DATA: "<IIIB", MsgType.ACK: "<II",
    MsgType.TIME_REQ: "<I", MsgType.TIME_RESP: "<IIIII", MsgType.COMMAND: "<HBBi", MsgType.RESULT: "<HBi",
    MsgType.LOG: "<B",
}
_CLASSES: dict[MsgType, type] = {c.TYPE: c for c in (Hello, Metric, Data, Ack, TimeReq, TimeResp, Command, Result, Log)}


class Frame(NamedTuple):
    addr: int | None
    msg: Message


def _control(b: bytes) -> bool:
    return any(x < 0x20 or x == 0x7F for x in b)


def _str8(s: str, what: str) -> bytes:
    b = s.encode()
    if len(b) > MAX_STR:
        raise ValueError(f"{what} is {len(b)} bytes of UTF-8, at most {MAX_STR} allowed")
    if _control(b):
        raise ValueError(f"{what} {s!r} contains a control character")
    return bytes((len(b),)) + b


def _unique(values: tuple[tuple[int, int], ...]) -> bool:
    idx = [i for i, _ in values]
    return len(set(idx)) == len(idx)


def encode_body(msg: Message, addr: int | None = None) -> bytes:
    t = msg.TYPE
    head = bytes((VERSION << 4 | FLAG_ADDR, addr, t)) if addr is not None else bytes((VERSION << 4, t))
    try:
        if isinstance(msg, Hello):
            payload = struct.pack(_FIXED[t], msg.node_id, msg.boot_id, msg.interval_ms, msg.ring_capacity,
                                  msg.n_metrics) + _str8(msg.fw_version, "fw_version")
        elif isinstance(msg, Metric):
            if msg.kind not in Kind._value2member_map_:
                raise ValueError(f"metric kind {msg.kind} is not one of {[int(k) for k in Kind]}")
            payload = (struct.pack(_FIXED[t], msg.index, msg.scale, msg.kind) + _str8(msg.name, "metric name")
                       + _str8(msg.unit, "metric unit"))
        elif isinstance(msg, Data):
            if len(msg.values) > MAX_VALUES:
                raise ValueError(f"{len(msg.values)} values in one reading, at most {MAX_VALUES}")
            if not _unique(msg.values):
                raise ValueError("a metric index appears twice in one reading")
            payload = struct.pack(_FIXED[t], msg.boot_id, msg.seq, msg.node_ms, len(msg.values)) + b"".join(
                struct.pack("<Bi", i, v) for i, v in msg.values)
        elif isinstance(msg, Log):
            text = msg.text.encode()
            if len(text) > MAX_LOG:
                raise ValueError(f"log text is {len(text)} bytes, at most {MAX_LOG}")
            payload = struct.pack("<B", msg.level) + text
        else:
            payload = struct.pack(_FIXED[t], *dataclasses.astuple(msg))
    except struct.error as e:
        raise ValueError(f"{t.name}: field out of range: {e}") from None
    return head + payload


def encode(msg: Message, addr: int | None = None) -> bytes:
    """A message -> one frame of wire bytes (ending in 0x00)."""
    if addr is not None and not 0 <= addr <= 255:
        raise ValueError(f"address {addr} is outside 0..255")
    return wrap(encode_body(msg, addr))


def _take_str(body: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos >= len(body):
        raise FrameError(f"{what}: missing length byte")
    n = body[pos]
    if n > MAX_STR or pos + 1 + n > len(body):
        raise FrameError(f"{what}: length {n} is too long or runs past the body")
    raw = body[pos + 1:pos + 1 + n]
    if _control(raw):
        raise FrameError(f"{what}: contains a control character")
    try:
        return raw.decode(), pos + 1 + n
    except UnicodeDecodeError:
        raise FrameError(f"{what}: not valid UTF-8") from None


def decode_body(body: bytes) -> Frame:
    if len(body) < 2:
        raise FrameError(f"body of {len(body)} bytes has no header")
    vf = body[0]
    if vf >> 4 != VERSION or vf & RESERVED_FLAGS:
        raise FrameError(f"header byte {vf:#04x}: protocol version {vf >> 4} / flags not supported (version {VERSION})")
    pos, addr = 1, None
    if vf & FLAG_ADDR:
        if len(body) < 3:
            raise FrameError("body too short for address and type")
        addr, pos = body[1], 2
    try:
        t = MsgType(body[pos])
    except ValueError:
        raise FrameError(f"unknown message type {body[pos]:#04x}") from None
    pos += 1
    fmt = _FIXED[t]
    size = struct.calcsize(fmt)
    if len(body) < pos + size:
        raise FrameError(f"{t.name}: payload of {len(body) - pos} bytes, at least {size} needed")
    fixed = struct.unpack_from(fmt, body, pos)
    pos += size
    if t is MsgType.HELLO:
        fw, pos = _take_str(body, pos, "HELLO fw_version")
        msg: Message = Hello(*fixed, fw)
    elif t is MsgType.METRIC:
        if fixed[2] not in Kind._value2member_map_:
            raise FrameError(f"METRIC: unknown kind {fixed[2]}")
        name, pos = _take_str(body, pos, "METRIC name")
        unit, pos = _take_str(body, pos, "METRIC unit")
        msg = Metric(*fixed, name, unit)
    elif t is MsgType.DATA:
        n = fixed[3]
        if n > MAX_VALUES or len(body) < pos + 5 * n:
            raise FrameError(f"DATA: {n} values do not fit the body (at most {MAX_VALUES})")
        values = tuple(struct.unpack_from("<Bi", body, pos + 5 * i) for i in range(n))
        if not _unique(values):
            raise FrameError("DATA: a metric index appears twice")
        pos += 5 * n
        msg = Data(fixed[0], fixed[1], fixed[2], values)
    elif t is MsgType.LOG:
        if len(body) - pos > MAX_LOG:
            raise FrameError(f"LOG: text of {len(body) - pos} bytes, at most {MAX_LOG}")
        try:
            msg = Log(fixed[0], body[pos:].decode())
        except UnicodeDecodeError:
            raise FrameError("LOG: text is not valid UTF-8") from None
        pos = len(body)
    else:
        msg = _CLASSES[t](*fixed)
    if pos != len(body):
        raise FrameError(f"{t.name}: {len(body) - pos} unexpected trailing bytes")
    return Frame(addr, msg)


def decode(frame: bytes | bytearray) -> Frame:
    """One frame of wire bytes (trailing 0x00 optional) -> (addr, message); raises FrameError."""
    return decode_body(unwrap(frame))


def canonical(f: Frame) -> str:
    """A text form both codecs print identically (the C test library has the same function)."""
    parts = [f"a={'-' if f.addr is None else f.addr}", f.msg.TYPE.name]
    for field in dataclasses.fields(f.msg):
        v = getattr(f.msg, field.name)
        if isinstance(v, str):
            v = v.encode().hex()
        elif isinstance(v, tuple):
            v = ",".join(f"{i}:{x}" for i, x in v)
        parts.append(f"{field.name}={v}")
    return " ".join(parts)
