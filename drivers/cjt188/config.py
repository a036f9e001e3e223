"""The ``cjt188`` device config (a model: pydantic, imported when validating); what the run time asks
of it (the type byte, the metrics) is in :class:`.driver.Cjt188Base`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import ProtocolError, SerialDevice
from drivers.meter_common.config import check_request_timeout, check_timezone

from . import codec
from .driver import DEFAULT_MAX_POWER, Cjt188Base
from .profiles import PROFILES


class Cjt188Config(Cjt188Base, SerialDevice):
    type: Literal["cjt188"]
    line: str = Field(description="Name of a `serial` line: RS-485 / M-Bus converter (2400 baud, parity E typical) or socket://host:port (a DTU).")
    address: str = Field(description="The meter's 14-digit address (nameplate), e.g. \"12345678000001\".")
    profile: Literal["water", "hot_water", "heat", "cooling", "gas"] = Field(
        description="water (10H), hot_water (11H), heat (20H), cooling (21H) or gas (30H): the meter type asked and the reply layout.")
    meter_type: int | None = Field(None, ge=0x10, le=0x49, description="Meter type byte T sent, when the meter wants another than its profile's (e.g. 0x12 drinking water).")
    heat_unit: Literal["kWh", "MWh", "GJ"] = Field("kWh", description="Unit heat and cooling are published in (the meter's own unit code is converted).")
    max_flow: float | None = Field(None, gt=0, le=100_000, description="Largest flow the meter can pass, m3/h (default 10: DN15-DN25 water, G6 gas); the volume counter cannot rise faster.")
    max_power: float | None = Field(None, gt=0, le=10_000_000, description=f"Heat meters: largest thermal power, kW (default {DEFAULT_MAX_POWER:g}); the heat counter cannot rise faster.")
    request_timeout: float = Field(2.0, gt=0, le=30, description="Seconds to wait for the reply.")
    wake: int = Field(4, ge=0, le=8, description="FE wake-up bytes sent before each request (battery meters behind M-Bus may want more).")
    check_ser: bool = Field(True, description="Take only a reply carrying the request's sequence number SER (some meters always answer 00: set false).")
    meter_timezone: str = Field("Asia/Shanghai", description="The meter clock's time zone (for clock_offset).")
    poll_interval: float = Field(60.0, gt=0, le=86_400, description="Seconds between polls.")
    timeout: float = Field(10.0, gt=0, le=600, description="Seconds before a poll counts as failed.")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        codec.parse_address(v)  # ValueError names what is wrong
        return v.strip().upper()

    _tz = field_validator("meter_timezone")(check_timezone)

    @model_validator(mode="after")
    def _fits(self) -> Cjt188Config:
        check_request_timeout(self.request_timeout, self.timeout)
        if self.meter_type is not None:
            try:
                fam = codec.family(self.meter_type)
            except ProtocolError as e:
                raise ValueError(str(e)) from None
            if (fam == "heat") != (PROFILES[self.profile].family == "heat"):
                raise ValueError(f"meter_type {self.meter_type:02X}H answers another layout than profile {self.profile!r}")
        return self
