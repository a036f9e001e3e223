"""The ``replay`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.contract import DeviceConfig

from .metrics import TimestampMode


class ReplayConfig(DeviceConfig):
    type: Literal["replay"]
    file: Path = Field(description="CSV file with a timestamp and a value column (NAB layout).")
    metric: str = Field("value", pattern=r"^[A-Za-z0-9_.-]+$")
    unit: str = ""
    speed: float = Field(1.0, ge=0, description="Time scale: 1 = real time, 60 = a minute per second, 0 = as fast as possible.")
    max_rows_per_read: int = Field(1000, ge=1, le=1_000_000)
    loop: bool = Field(True, description="Start again at the end of the file (timestamps keep increasing).")
    timestamps: TimestampMode = TimestampMode.SHIFT
    ts_column: str = "timestamp"
    value_column: str = "value"
