"""The ``sunspec`` device config (a model: pydantic, imported when validating); its points are in
:class:`.points.SunSpecBase`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import EnergyConfig, ModbusDevice

from .catalog import entries
from .models import METERS, SUPPORTED, ModelsUnavailable, model
from .points import BATTERY_POWER, POWER_LIMIT, SunSpecBase


class SunSpecConfig(SunSpecBase, ModbusDevice):
    type: Literal["sunspec"]
    models: tuple[int, ...] = Field(description="SunSpec models to read, e.g. [103, 123, 124] "
                                                "(`edge-agent scan` lists a device's chain).")
    base: int | None = Field(None, ge=0, le=65535, description="Register of the SunS marker (default: try 40000, 0, 50000).")
    writable: tuple[Literal["power_limit", "battery_power"], ...] = Field(
        (), description='Points commands and the site controller may write: "power_limit" (model 123 or 704), '
                        '"battery_power" (model 124).')
    battery_max_w: float | None = Field(None, gt=0, description="Battery power rating (W): the bounds of battery_power.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _default_energy(cls, data: Any) -> Any:
        """With a meter model, the energy ledger books the grid import (not the PV production)."""
        if isinstance(data, dict) and "energy" not in data and METERS & set(data.get("models") or ()):
            data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("models")
    @classmethod
    def _models(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("list at least one SunSpec model")
        bad = [m for m in v if m not in SUPPORTED]
        if bad:
            raise ValueError(f"unsupported SunSpec model(s) {', '.join(map(str, bad))} "
                             f"(supported: {', '.join(map(str, sorted(SUPPORTED)))})")
        if len(set(v)) != len(v):
            raise ValueError("a model is listed twice")
        try:
            for m in v:
                model(m)
        except ModelsUnavailable as e:
            raise ValueError(str(e)) from None
        names = [e.metric for m in v for e in entries(m)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"models {', '.join(map(str, v))} both deliver {', '.join(dup)}: list one of them")
        return v

    @model_validator(mode="after")
    def _writes_possible(self) -> SunSpecConfig:
        if POWER_LIMIT in self.writable and not {123, 704} & set(self.models):
            raise ValueError("power_limit is written through model 123 or 704: add one of them to models")
        if BATTERY_POWER in self.writable:
            if 124 not in self.models:
                raise ValueError("battery_power is written through model 124: add 124 to models")
            if self.battery_max_w is None:
                raise ValueError("battery_power needs battery_max_w (the battery's power rating, W)")
        return self
