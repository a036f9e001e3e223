"""Per-device processing options every device config carries (``publish``, ``checks``, ``energy``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .enums import EnergyMethod, PublishMode


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class CheckConfig(_Frozen):
    """Quality checks for one metric of one device."""

    min: float | None = Field(None, description="Lowest physically possible value (out_of_range below); default: the sensor's specified minimum.")
    max: float | None = Field(None, description="Highest physically possible value (out_of_range above); default: the sensor's specified maximum.")
    stuck_samples: int = Field(0, ge=0, le=1_000_000, description="Flag stuck after this many equal samples; 0 = off.")
    stuck_tolerance: float = Field(0.0, ge=0, description="Values within this of each other count as equal.")
    max_rate: float | None = Field(None, gt=0, description="Largest plausible change per second (rate_of_change).")
    stale_after: float | None = Field(None, gt=0, description="Seconds; a reading older than this on arrival is stale.")

    @model_validator(mode="after")
    def _bounds(self) -> CheckConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class EnergyConfig(_Frozen):
    """Which metric of a device gives its energy. Without it, a single kWh/Wh counter is used if present."""

    metric: str = Field(description="Metric name of the energy register or power reading.")
    method: EnergyMethod | None = Field(None, description="Default: counter for counter metrics, else integrate.")
    rollover: float = Field(0.0, ge=0, description="Register wraps to 0 after this value (e.g. 4294967296); 0 = never.")
    max_power_w: float | None = Field(None, gt=0, description=(
        "The most power the meter can deliver (default: its profile's rating, else 1 MW); a counter step above "
        "1.5 x this x the time since the counter last rose is held as a glitch until confirmed."))
    max_step_kwh: float | None = Field(None, gt=0, description="Also hold any step larger than this between two readings.")


__all__ = ["CheckConfig", "EnergyConfig", "EnergyMethod", "PublishMode"]
