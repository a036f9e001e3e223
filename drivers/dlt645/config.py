"""The ``dlt645`` device config (a model: pydantic, imported when validating); what the run time asks
of it (its identifiers and points) is in :class:`.driver.Dlt645Base`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import EnergyConfig, SerialDevice
from drivers.meter_common.config import check_request_timeout, check_timezone

from .codec import Edition
from .driver import Dlt645Base
from .profiles import BY_METRIC, PROFILES


class Dlt645Config(Dlt645Base, SerialDevice):
    type: Literal["dlt645"]
    line: str = Field(description="Name of a `serial` line: RS-485 (2400 baud, parity E typical) or socket://host:port (a DTU).")
    address: str = Field(pattern=r"^\d{12}$", description="The meter's 12-digit address (nameplate), e.g. \"123456781012\".")
    edition: Edition = Field(Edition.V2007, description="Protocol edition: \"2007\" or \"1997\".")
    profile: str = Field("basic", description=f"Identifiers to read: {', '.join(PROFILES)}.")
    metrics: tuple[str, ...] | None = Field(None, description="Read exactly these metrics instead of the profile's.")
    energy_interval: float = Field(300.0, ge=0, le=86_400, description="Seconds between reads of energy and demand registers (0: every poll).")
    request_timeout: float = Field(1.5, gt=0, le=30, description="Seconds to wait for the reply to one identifier.")
    wake: int = Field(4, ge=0, le=4, description="FE wake-up bytes sent before each request.")
    block_reads: bool = Field(True, description="2007: read phases and tariffs with one block request (DI1 = FF), falling back to single identifiers.")
    meter_timezone: str = Field("Asia/Shanghai", description="The meters' local time zone, for broadcast time sync.")
    writable: tuple[Literal["time_sync"], ...] = Field((), description='Points commands may write: "time_sync".')
    poll_interval: float = Field(30.0, gt=0, le=86_400, description="Seconds between polls.")
    timeout: float = Field(20.0, gt=0, le=600, description="Seconds before a poll counts as failed.")

    @model_validator(mode="before")
    @classmethod
    def _default_energy(cls, data: Any) -> Any:
        """The billing counter (forward active energy) feeds the energy ledger unless ``energy`` says otherwise."""
        if isinstance(data, dict) and "energy" not in data:
            names = data.get("metrics") or PROFILES.get(str(data.get("profile", "basic")), ())
            if "energy_import" in names:
                data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r} (known: {', '.join(PROFILES)})")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [m for m in v or () if m not in BY_METRIC]
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))} (known: {', '.join(BY_METRIC)})")
        return v

    _tz = field_validator("meter_timezone")(check_timezone)

    @model_validator(mode="after")
    def _fits(self) -> Dlt645Config:
        missing = [i.metric for i in self.items() if i.di(self.edition) is None]
        if self.metrics is not None and missing:
            raise ValueError(f"DL/T 645-{self.edition.value} has no identifier for {', '.join(missing)}")
        check_request_timeout(self.request_timeout, self.timeout)
        return self
