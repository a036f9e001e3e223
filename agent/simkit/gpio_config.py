"""The ``gpio_sim`` line kind's config (a model: pydantic); the line itself is :mod:`agent.simkit.gpio`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agent.contract.config import LineConfig
from agent.contract.gpio import GPIO_BUS


class GpioSimLineConfig(LineConfig):
    """A GPIO line on a simulated chip (tests, demos, training)."""

    BUS: ClassVar[str | None] = GPIO_BUS

    type: Literal["gpio_sim"]
    pulse_hz: dict[int, float] = Field(
        default_factory=dict, description="Pins that pulse by themselves, pulses per second (e.g. { 17 = 2.0 }).")
