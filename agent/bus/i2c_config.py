"""The ``i2c`` line kind's config (a model: pydantic); the bus itself is :mod:`agent.bus.i2c`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..contract.config import LineConfig
from ..contract.i2c import I2C_BUS


class I2cLineConfig(LineConfig):
    """An I2C bus of the gateway (Raspberry Pi header pins 3/5 are bus 1)."""

    BUS: ClassVar[str | None] = I2C_BUS

    type: Literal["i2c"]
    bus: int = Field(1, ge=0, le=255, description="Bus number N of /dev/i2c-N.")
