"""Modbus RTU framing arithmetic: bits per character and the t3.5 silent interval."""

from __future__ import annotations

from .base import Parity


def bits_per_char(*, bytesize: int = 8, parity: Parity | str = Parity.NONE, stopbits: int = 1) -> int:
    """Bits on the wire per character: 1 start + data + parity + stop."""
    return 1 + bytesize + (0 if Parity(parity) is Parity.NONE else 1) + stopbits


def default_gap(baudrate: int, bpc: int) -> float:
    """The Modbus RTU t3.5 silent interval, fixed at 1.75 ms above 19200 baud."""
    return 0.00175 if baudrate > 19200 else 3.5 * bpc / baudrate
