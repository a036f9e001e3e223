"""The ``modbus_meter`` device config: a profile or inline registers (validated here, with pydantic)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.contract import ModbusDevice

from .codec import (
    Profile,
    ProfileError,
    RegisterSpec,
    check_registers,
    load_profile,
    parse_address,
    profile_names,
)
from .registers import MeterBase


class ModbusMeterConfig(MeterBase, ModbusDevice):
    type: Literal["modbus_meter"]
    unit: int = Field(1, ge=1, le=255, description="Modbus unit id; defaults to the profile's (S8: 254, else 1).")
    profile: str | None = Field(None, description="A shipped register profile, e.g. sdm630.")
    registers: tuple[RegisterSpec, ...] = Field((), description="Inline registers (added to the profile's, if any).")
    metrics: tuple[str, ...] | None = Field(None, description="Read only these metrics (default: all).")
    energy_base: int | None = Field(None, description="DTSU666 energy register base: \"0x1000\" or \"0x4000\".")
    max_registers: int | None = Field(None, ge=1, le=125, description="Override the profile's registers per request.")
    max_gap: int | None = Field(None, ge=0, le=125, description="Override the profile's largest hole read over.")
    request_timeout: float | None = Field(None, gt=0, le=60, description="Reply timeout per request (default: the line's).")

    @model_validator(mode="before")
    @classmethod
    def _default_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "unit" not in data:
            prof = data.get("profile")
            known = isinstance(prof, str) and prof in profile_names()
            data = {**data, "unit": load_profile(prof).profile.default_unit if known else 1}
        return data

    @field_validator("profile")
    @classmethod
    def _profile_exists(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                load_profile(v)
            except ProfileError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("registers")
    @classmethod
    def _registers_ok(cls, v: tuple[RegisterSpec, ...], info: ValidationInfo) -> tuple[RegisterSpec, ...]:
        prof = info.data.get("profile")
        base = load_profile(prof).registers if prof else ()
        check_registers((*base, *v))
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics_known(cls, v: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("list at least one metric, or leave metrics out to read all")
        known = [r.name for r in info.data.get("registers", ())]
        if info.data.get("profile"):
            known = [r.name for r in load_profile(info.data["profile"]).registers] + known
        bad = [m for m in v if m not in known]
        if bad:
            import difflib  # only when a suggestion is built: not loaded by a running agent
            close = [c for m in bad for c in difflib.get_close_matches(m, known, n=1, cutoff=0.6)]
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))}; {hint}available: {', '.join(known)}")
        return v

    _addr = field_validator("energy_base", mode="before")(parse_address)

    @field_validator("energy_base")
    @classmethod
    def _base_allowed(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None:
            return v
        prof = info.data.get("profile")
        opt = load_profile(prof).profile.bases.get("energy_base") if prof else None
        if opt is None:
            raise ValueError(f"profile {prof!r} has no energy_base option")
        if v not in opt.choices:
            raise ValueError(f"must be one of {', '.join(hex(c) for c in opt.choices)}, not {hex(v)}")
        return v

    @model_validator(mode="after")
    def _something_to_read(self) -> ModbusMeterConfig:
        if self.profile is None and not self.registers:
            raise ValueError("give profile = \"<name>\" or at least one [[devices.registers]] table")
        return self

    def loaded_profile(self) -> Profile | None:
        return load_profile(self.profile) if self.profile else None

    def plain_extras(self) -> dict[str, Any]:
        """The profile, loaded here at validation, for the plain twin (see :class:`.registers.MeterBase`)."""
        return {"validated_profile": self.loaded_profile()}
