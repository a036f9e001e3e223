"""The ``pv_inverter`` device config (a model: pydantic, imported when validating); its behaviour
(bounds, points) is in :class:`.registers.PvInverterBase`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import EnergyConfig, ModbusDevice

from .profile import Profile, load_profile, profile_names
from .registers import PvInverterBase


class PvInverterConfig(PvInverterBase, ModbusDevice):
    type: Literal["pv_inverter"]
    profile: str = Field(description="Register profile: " + ", ".join(profile_names()))
    unit: int | None = Field(None, ge=1, le=255, description="Unit id; default from the profile.")  # type: ignore[assignment]
    metrics: tuple[str, ...] | None = Field(None, description="Read only these metrics (default: all the profile's).")
    writable: tuple[str, ...] = Field((), description="Points commands and the site controller may write "
                                                      "(e.g. battery_power, export_limit_w, power_limit).")
    battery_max_w: float | None = Field(None, gt=0, description="Battery power rating (W): the bounds of battery_power.")
    export_max_w: float | None = Field(None, gt=0, description="Highest export limit accepted (W): the bound of export_limit_w.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """The profile's unit id; the energy ledger books the grid import (the inverters carry the meter)."""
        if isinstance(data, dict) and data.get("profile") in profile_names():
            prof = load_profile(data["profile"])
            if data.get("unit") is None:
                data = {**data, "unit": prof.profile.default_unit}
            if "energy" not in data and any(r.name == "energy_import" for r in prof.registers):
                data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("profile")
    @classmethod
    def _known(cls, v: str) -> str:
        load_profile(v)  # ConfigError naming the known profiles
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PvInverterConfig:
        prof = load_profile(self.profile)
        known = [r.name for r in prof.registers]
        bad = [m for m in self.metrics or () if m not in known]
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(bad)} for profile {self.profile} (known: {', '.join(known)})")
        if self.metrics is not None and not self.metrics:
            raise ValueError("list at least one metric, or leave metrics out to read all")
        points = {p.name: p for p in prof.points}
        for name in self.writable:
            p = points.get(name)
            if p is None:
                raise ValueError(f"{name!r} is not a point of profile {self.profile} "
                                 f"(its points: {', '.join(points) or 'none'})")
            if p.high_from and getattr(self, p.high_from) is None:
                raise ValueError(f"{name} needs {p.high_from} (its upper bound, W)")
            _, high = self.bounds(p)
            if high is not None and high > p.largest():
                raise ValueError(f"{name}: {p.high_from or 'high'} {high:g} is more than the device's register "
                                 f"holds ({p.largest():g})")
        return self

    def loaded_profile(self) -> Profile:
        return load_profile(self.profile)

    def plain_extras(self) -> dict[str, Any]:
        """The profile, loaded here at validation, for the plain twin (see :class:`.registers.PvInverterBase`)."""
        return {"validated_profile": self.loaded_profile()}
