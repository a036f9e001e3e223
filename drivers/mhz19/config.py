"""The ``mhz19`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import SerialDevice

from .driver import DetectionRange, WarmupMode


class Mhz19Config(SerialDevice):
    type: Literal["mhz19"]
    line: str = Field(description="Name of a `serial` line (9600 8N1).")
    abc: bool | None = Field(None, description="Automatic baseline correction: set on open when given, else left as it is.")
    detection_range: DetectionRange | None = Field(None, description="Set the detection range (ppm) on open when given.")
    warmup: float = Field(180.0, ge=0, le=3600, description="Seconds after open during which readings are not trusted.")
    warmup_mode: WarmupMode = WarmupMode.ESTIMATED
