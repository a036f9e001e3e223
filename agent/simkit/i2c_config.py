"""The ``i2c_sim`` line kind's config (a model: pydantic); the line itself is :mod:`agent.simkit.i2c`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from agent.contract.config import LineConfig
from agent.contract.i2c import I2C_BUS

from .i2c import emulator_names


class I2cSimLineConfig(LineConfig):
    """An emulated I2C bus with one emulated chip on it, for demos and training."""

    BUS: ClassVar[str | None] = I2C_BUS

    type: Literal["i2c_sim"]
    chip: str = Field(description="The emulated chip, by its registered name (e.g. bme680).")
    address: int | None = Field(None, ge=0x03, le=0x77, description="The chip's address; default: the emulator's.")
    vary: bool = Field(True, description="Let the emulated readings drift.")

    @field_validator("chip")
    @classmethod
    def _installed(cls, v: str) -> str:
        names = emulator_names()
        if v not in names:
            raise ValueError(f"no emulated I2C chip named {v!r} (installed: {', '.join(names) or 'none'})")
        return v
