"""The serial port settings every serial-based line kind's config shares (a model: pydantic)."""

from __future__ import annotations

from pydantic import Field

from ..contract.config import LineConfig
from .base import Parity, SerialBase


class SerialSettings(SerialBase, LineConfig):
    """Serial port settings shared by every serial-based line kind."""

    port: str = Field(description="Device path (/dev/ttyUSB0, /dev/serial/by-id/...) or a pyserial URL (socket://host:port).")
    baudrate: int = Field(9600, description="Bits per second; always set it: device defaults differ.")
    bytesize: int = Field(8, ge=5, le=8)
    parity: Parity = Parity.NONE
    stopbits: int = Field(1, ge=1, le=2)
