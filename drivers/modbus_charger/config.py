"""The ``modbus_charger`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from agent.contract import ModbusDevice
from drivers.charger_common.config import ChargerConfig

from .profile import Profile, load_profile, profile_names
from .registers import ModbusChargerBase


class ModbusChargerConfig(ModbusChargerBase, ModbusDevice, ChargerConfig):
    type: Literal["modbus_charger"]
    profile: str = Field(description="Register profile: " + ", ".join(profile_names()))
    unit: int | None = Field(None, ge=1, le=255, description="Unit id; default from the profile (often 255).")
    connector: int = Field(1, ge=0, le=64, description="Connector number (CHARX: registers connector x 1000 + offset).")
    heartbeat_interval: float | None = Field(None, gt=0, description="Override the profile's heartbeat interval (s).")

    @field_validator("profile")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in profile_names():
            import difflib  # only when a suggestion is built: not loaded by a running agent
            close = difflib.get_close_matches(v, profile_names(), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"unknown charger profile {v!r} (known: {', '.join(profile_names())}){hint}")
        return v

    def loaded_profile(self) -> Profile:
        return load_profile(self.profile)

    def plain_extras(self) -> dict[str, Any]:
        """The profile, loaded here at validation, for the plain twin (see :class:`.registers.ModbusChargerBase`)."""
        return {"validated_profile": self.loaded_profile()}
