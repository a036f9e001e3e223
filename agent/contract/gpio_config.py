"""The config mixin of a device on one pin of a GPIO line (a model: pydantic); the line handle is in :mod:`.gpio`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .config import LineDevice
from .gpio import GPIO_BUS


class GpioDevice(LineDevice):
    """A device on one pin of a GPIO line: ``line`` + ``pin``."""

    BUS: ClassVar[str | None] = GPIO_BUS

    line: str = Field(description="Name of a `gpio` line.")
    pin: int = Field(ge=0, le=1023, description="GPIO number (BCM numbering on a Raspberry Pi).")
