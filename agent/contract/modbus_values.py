"""Modbus register value codec shared by every Modbus driver (meters, chargers, sensors).

Registers are 16-bit words as read from the wire. ``WordOrder`` names the byte layout of a
multi-register value with letters for the bytes of the big-endian value (A = most significant):

* ``ABCD``: high word first, big-endian bytes (the Modbus default; Eastron, CHINT)
* ``CDAB``: low word first ("word swap"; e.g. Phoenix EV-ETH int32)
* ``BADC``: high word first, bytes swapped inside each word
* ``DCBA``: fully little-endian

For single-register types only the byte swap matters (``BADC``/``DCBA`` swap the two bytes).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence


class DataType(enum.StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    INT64 = "int64"
    UINT64 = "uint64"
    BITFIELD = "bitfield"  # one register as an unsigned bit set


class WordOrder(enum.StrEnum):
    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"


# dtype -> (struct format for the big-endian value, registers)
_FORMATS: dict[DataType, tuple[str, int]] = {
    DataType.INT16: (">h", 1),
    DataType.UINT16: (">H", 1),
    DataType.BITFIELD: (">H", 1),
    DataType.INT32: (">i", 2),
    DataType.UINT32: (">I", 2),
    DataType.FLOAT32: (">f", 2),
    DataType.INT64: (">q", 4),
    DataType.UINT64: (">Q", 4),
    DataType.FLOAT64: (">d", 4),
}

_FLOATS = frozenset({DataType.FLOAT32, DataType.FLOAT64})


def register_count(dtype: DataType | str) -> int:
    """Number of 16-bit registers a value of ``dtype`` occupies."""
    return _FORMATS[DataType(dtype)][1]


def is_float(dtype: DataType | str) -> bool:
    return DataType(dtype) in _FLOATS


def _swaps(order: WordOrder) -> tuple[bool, bool]:
    """(swap bytes inside words, reverse word order)."""
    return order in (WordOrder.BADC, WordOrder.DCBA), order in (WordOrder.CDAB, WordOrder.DCBA)


def _to_canonical(words: Sequence[int], order: WordOrder) -> bytes:
    byte_swap, word_rev = _swaps(order)
    ws = list(reversed(words)) if word_rev else list(words)
    out = bytearray()
    for w in ws:
        hi, lo = (w >> 8) & 0xFF, w & 0xFF
        out += bytes((lo, hi)) if byte_swap else bytes((hi, lo))
    return bytes(out)


def _from_canonical(data: bytes, order: WordOrder) -> list[int]:
    byte_swap, word_rev = _swaps(order)
    words = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        words.append((lo << 8 | hi) if byte_swap else (hi << 8 | lo))
    return list(reversed(words)) if word_rev else words


def decode(regs: Sequence[int], dtype: DataType | str, order: WordOrder | str = WordOrder.ABCD) -> float | int:
    """Decode exactly ``register_count(dtype)`` registers. Integers stay ``int``; floats are ``float``.

    Raises ValueError naming the problem when the register count or a register value is wrong.
    """
    dt, wo = DataType(dtype), WordOrder(order)
    fmt, n = _FORMATS[dt]
    if len(regs) != n:
        raise ValueError(f"{dt.value} needs {n} register(s), got {len(regs)}")
    for r in regs:
        if not isinstance(r, int) or not 0 <= r <= 0xFFFF:
            raise ValueError(f"register value {r!r} is not a 16-bit unsigned integer")
    (value,) = struct.unpack(fmt, _to_canonical(regs, wo))
    return float(value) if dt in _FLOATS else int(value)


def encode(value: float | int, dtype: DataType | str, order: WordOrder | str = WordOrder.ABCD) -> list[int]:
    """Encode ``value`` into registers. Integer types need an integral value within range.

    Raises ValueError (never struct.error) naming the value and type when it does not fit.
    """
    dt, wo = DataType(dtype), WordOrder(order)
    fmt, _ = _FORMATS[dt]
    if isinstance(value, bool):
        value = int(value)
    if dt in _FLOATS:
        v: float | int = float(value)
        if dt is DataType.FLOAT32 and math.isfinite(v) and abs(v) > 3.4028234663852886e38:
            raise ValueError(f"{value!r} is out of range for float32")
    else:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not an integer; {dt.value} holds integers only")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"{value!r} is not a number")
        v = value
    try:
        data = struct.pack(fmt, v)
    except (struct.error, OverflowError):
        raise ValueError(f"{value!r} is out of range for {dt.value}") from None
    return _from_canonical(data, wo)


__all__ = ["DataType", "WordOrder", "register_count", "decode", "encode", "is_float"]
