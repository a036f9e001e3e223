"""SunSpec point values: raw registers <-> numbers, with scale factors and "not implemented" markers.

A point the device does not implement (0x8000 for int16, 0xFFFF for uint16 and enum16, 0 for an
accumulator, NaN for float32 ...) decodes to NaN, never to a number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from agent.contract import ProtocolError

from .models import ModelDef, PointDef

_NI = {  # raw value meaning "not implemented"
    "int16": 0x8000, "uint16": 0xFFFF, "enum16": 0xFFFF, "bitfield16": 0xFFFF, "sunssf": 0x8000,
    "count": None, "acc16": 0, "int32": 0x80000000, "uint32": 0xFFFFFFFF, "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF, "acc32": 0, "int64": 0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF,
    "acc64": 0,
}
_SIGNED = {"int16": 16, "sunssf": 16, "int32": 32, "int64": 64}


def raw_int(words: Sequence[int]) -> int:
    out = 0
    for w in words:
        out = (out << 16) | (w & 0xFFFF)
    return out


def decode_point(p: PointDef, words: Sequence[int], sf: int | None = None) -> float:
    """The value of ``p`` from its ``words`` (scaled by 10**sf); NaN when not implemented."""
    if len(words) != p.size:
        raise ProtocolError(f"SunSpec point {p.name}: {len(words)} registers, expected {p.size}")
    if p.type == "float32":
        v = struct.unpack(">f", struct.pack(">HH", *words))[0]
        return float(v)
    if p.type in ("string", "pad", "ipaddr", "ipv6addr", "eui48"):
        return math.nan
    raw = raw_int(words)
    if raw == _NI.get(p.type, -1):
        return math.nan
    bits = _SIGNED.get(p.type)
    if bits is not None and raw >= 1 << (bits - 1):
        raw -= 1 << bits
    if sf is None:
        return float(raw)
    return float(raw) * 10.0 ** sf


def encode_point(p: PointDef, value: float, sf: int | None = None) -> list[int]:
    """The registers carrying ``value`` (scaled by 10**-sf); ValueError when it does not fit."""
    if p.type == "float32":
        return list(struct.unpack(">HH", struct.pack(">f", value)))
    raw = round(value / 10.0 ** sf) if sf is not None else round(value)
    bits = p.size * 16
    signed = p.type in _SIGNED
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= raw <= hi or raw == _NI.get(p.type, None) and raw != 0:
        raise ValueError(f"{p.name} {value:g} does not fit a {p.type}")
    raw &= (1 << bits) - 1
    return [(raw >> (16 * (p.size - 1 - i))) & 0xFFFF for i in range(p.size)]


def decode_string(words: Sequence[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def scale_of(m: ModelDef, p: PointDef, block: Sequence[int]) -> int | None:
    """The scale factor exponent of ``p`` read from the model's registers ``block`` (from its ID)."""
    if p.sf is None:
        return None
    if isinstance(p.sf, int):
        return p.sf
    sfp = m.points[p.sf]
    raw = raw_int(block[sfp.offset:sfp.offset + 1])
    if raw == 0x8000:
        return None
    return raw - 0x10000 if raw >= 0x8000 else raw


def decode_model(m: ModelDef, block: Sequence[int], names: Sequence[str]) -> dict[str, float]:
    """``names``' values from a model's registers ``block`` (starting at its ID register)."""
    out: dict[str, float] = {}
    for name in names:
        p = m.points[name]
        words = block[p.offset:p.offset + p.size]
        if len(words) < p.size:
            out[name] = math.nan
            continue
        sf = scale_of(m, p, block)
        if p.sf is not None and sf is None:  # the scale factor itself is not implemented
            out[name] = math.nan
            continue
        out[name] = decode_point(p, words, sf)
    return out
