"""The config keys every charger device has (a model: pydantic); their behaviour is in :mod:`.charger`."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from .charger import ChargerKeysBase, ChargerPoint


class ChargerKeys(ChargerKeysBase, BaseModel):
    """Config keys every charger device has, on top of the common device keys (a mixin)."""

    phases: int = Field(3, description="Phases wired to the vehicle (1 or 3).")
    voltage: float = Field(230.0, gt=0, le=400, description="Nominal phase voltage, for power/current conversions.")
    writable: tuple[ChargerPoint, ...] = Field(
        (), description="Points the gateway may change (commands and the site controller): current_limit, start, "
                        "stop, boost. Nothing by default; a charger the site manages needs current_limit."
    )
    current_limit_bounds: tuple[float, float] = Field(
        (6.0, 32.0), description="[min, max] amps any write may set (IEC 61851 minimum is 6 A); 0 always pauses."
    )

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: int) -> int:
        if v not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> ChargerKeys:
        lo, hi = self.current_limit_bounds
        if not (0 <= lo <= hi <= 500):
            raise ValueError("current_limit_bounds must be [min, max] with 0 <= min <= max <= 500")
        return self
