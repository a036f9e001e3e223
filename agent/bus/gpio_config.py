"""The ``gpio`` line kind's config (a model: pydantic); the line itself is :mod:`agent.bus.gpio`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..contract.config import LineConfig
from ..contract.gpio import GPIO_BUS
from .gpio import GpioBackendKind


class GpioLineConfig(LineConfig):
    """The gateway's GPIO header."""

    BUS: ClassVar[str | None] = GPIO_BUS

    type: Literal["gpio"]
    backend: GpioBackendKind = GpioBackendKind.AUTO
    chip: str = Field("/dev/gpiochip0", description="gpiod chip (Pi 5: /dev/gpiochip4 on older kernels, else gpiochip0).")
