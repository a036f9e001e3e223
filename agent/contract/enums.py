"""The config's enums, without pydantic: a plain config carries their members (see :mod:`agent.contract.plain`)."""

from __future__ import annotations

import enum


class PublishMode(enum.StrEnum):
    RAW = "raw"  # every reading
    AGG = "agg"  # window aggregates only
    BOTH = "both"


class EnergyMethod(enum.StrEnum):
    COUNTER = "counter"  # an energy register (kWh/Wh): deltas with rollover and reset detection
    INTEGRATE = "integrate"  # a power reading (W/kW): trapezoid integration
