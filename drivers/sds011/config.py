"""The ``sds011`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.contract import SerialDevice

from . import codec


class Sds011Config(SerialDevice):
    type: Literal["sds011"]
    line: str = Field(description="Name of a `serial` line (9600 8N1).")
    device_id: int = Field(codec.ALL_SENSORS, ge=0, le=0xFFFF, description="Sensor id; 65535 (FFFF) addresses any sensor.")
    sleep_between_reads: bool = Field(False, description="Sleep the laser between readings to extend its life.")
    read_every: float = Field(300.0, gt=0, description="With sleep_between_reads: seconds between readings.")
    warmup: float = Field(30.0, ge=0, le=600, description="With sleep_between_reads: seconds the fan runs before a reading counts.")

    @model_validator(mode="after")
    def _cycle(self) -> Sds011Config:
        if self.sleep_between_reads and self.warmup >= self.read_every:
            raise ValueError(f"warmup ({self.warmup:g}s) must be shorter than read_every ({self.read_every:g}s)")
        return self
