"""The config mixin of a device on an I2C line (a model: pydantic); the bus handle is in :mod:`.i2c`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .config import LineDevice
from .i2c import I2C_BUS


class I2cDevice(LineDevice):
    """A device on an I2C line: ``line`` + its 7-bit ``address``."""

    BUS: ClassVar[str | None] = I2C_BUS

    line: str = Field(description="Name of an I2C line (`i2c`, or `i2c_sim` for an emulated chip).")
    address: int = Field(ge=0x03, le=0x77, description="7-bit I2C address.")
