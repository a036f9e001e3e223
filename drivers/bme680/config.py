"""The ``bme680`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import I2cDevice


class Bme680Config(I2cDevice):
    type: Literal["bme680"]
    address: Literal[0x76, 0x77] = Field(0x77, description="0x77 (SDO to VDDIO, the breakout default) or 0x76.")
    gas: bool = Field(True, description="Run the gas heater and report gas resistance.")
    heater_temp: int = Field(320, ge=200, le=400, description="Gas heater target, degC.")
    heater_ms: int = Field(150, ge=1, le=4032, description="Gas heater duration, ms.")
    sea_level_pressure: float = Field(1013.25, gt=800, lt=1200, description="For the altitude estimate only.")
