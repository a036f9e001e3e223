"""The ``pulse_counter`` and ``digital_input`` device configs (models: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import Edge, GpioDevice, Pull

from .driver import Quantity


class PulseCounterConfig(GpioDevice):
    type: Literal["pulse_counter"]
    edge: Edge = Field(Edge.FALLING, description="Edge that counts; S0 outputs with a pull-up: falling.")
    pull: Pull = Pull.UP
    min_interval_ms: float = Field(20.0, ge=0, le=60_000, description="Edges closer than this to the last counted pulse are rejected (and counted as rejected).")
    quantity: Quantity = Quantity.ENERGY
    pulses_per_unit: float = Field(1000.0, gt=0, description="Meter constant: imp/kWh for energy, imp/m3 for volume (water) and gas.")
    persist_interval: float = Field(1.0, gt=0, le=3600, description="Seconds within which a pulse is saved to disk.")


class DigitalInputConfig(GpioDevice):
    type: Literal["digital_input"]
    pull: Pull = Pull.UP
    invert: bool = Field(False, description="Report 1 when the pin is low (contacts to ground with a pull-up).")
    min_interval_ms: float = Field(20.0, ge=0, le=60_000, description="Edges closer than this to the last counted change are rejected (and counted).")
