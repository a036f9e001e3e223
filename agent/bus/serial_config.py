"""The ``serial`` line kind's config (a model: pydantic); the port itself is :mod:`agent.bus.serial_port`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..contract.serial import SERIAL_BUS
from .serial_settings import SerialSettings


class SerialLineConfig(SerialSettings):
    """A serial port shared by the devices configured on it."""

    BUS: ClassVar[str | None] = SERIAL_BUS

    type: Literal["serial"]
    reopen_min: float = Field(0.5, gt=0, le=60, description="First wait before reopening a lost port (s).")
    reopen_max: float = Field(30.0, gt=0, le=3600, description="Longest wait between reopen attempts (s).")
    max_buffer: int = Field(4096, ge=64, le=1 << 20, description="Receive buffer cap; older bytes are dropped and counted.")
