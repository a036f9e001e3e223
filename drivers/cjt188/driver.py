"""``cjt188``: a CJ/T 188 water, heat or gas meter on a ``serial`` line: an RS-485 or M-Bus
converter (2400 8E1 typical; the line's settings are the meter's) or a DTU reached over TCP
(``port = "socket://host:port"``). Several meters share one line, each addressed by its 14-digit
address.

Each poll is one request (read data, DI 901F) and one reply that carries every value: cumulative
volume (and heat), the settlement-day values, a heat meter's power, flow rate and temperatures,
the meter's clock and its status word (valve, battery). Values arrive with a unit code per
quantity; the driver converts them to the metric's declared unit (m3, m3/h, kW, and kWh, MWh or
GJ for heat as ``heat_unit`` says), so a meter switched from GJ to kWh never breaks a series.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from agent.contract import DriverContext, MetricSpec, ProtocolError, Sample, SerialDevice, SerialPort
from drivers.meter_common.config import check_request_timeout, check_timezone

from . import codec
from .profiles import PROFILES, metrics

log = logging.getLogger("edge_agent.drivers.cjt188")
DEFAULT_MAX_FLOW = {"water": 10.0, "gas": 10.0, "heat": 10.0}  # m3/h: DN15-DN25 meters, a G6 gas meter
DEFAULT_MAX_POWER = 1000.0  # kW: 10 m3/h at a 86 K spread


class Cjt188Config(SerialDevice):
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

    @property
    def type_byte(self) -> int:
        return self.meter_type if self.meter_type is not None else int(PROFILES[self.profile].meter_type)

    def metric_specs(self) -> list[MetricSpec]:
        fam = PROFILES[self.profile].family
        return metrics(self.profile, max_flow=self.max_flow or DEFAULT_MAX_FLOW[fam],
                       max_power=self.max_power or DEFAULT_MAX_POWER, heat_unit=self.heat_unit,
                       heat_factor=codec.HEAT_UNITS[self.heat_unit])


class Cjt188Driver:
    def __init__(self, config: Cjt188Config, ctx: DriverContext):
        self.config = config
        self.port: SerialPort = ctx.buses.get(config.line)
        self.clock = ctx.clock
        self.address = codec.parse_address(config.address)
        self.family = PROFILES[config.profile].family
        self._scan = codec.reply_scan(self.address, self.family)
        self.specs = config.metric_specs()
        self.heat_factor = codec.HEAT_UNITS[config.heat_unit]
        self._ser = itertools.count(int.from_bytes(self.address[:1], "little"))
        self._tz = ZoneInfo(config.meter_timezone)

    def metrics(self) -> list[MetricSpec]:
        return list(self.specs)

    async def open(self) -> None:
        """Nothing to set up: the line opens on the first request."""

    def _answer(self, ser: int):
        """Accept only this meter's reply to this request (or its refusal): a late reply to an
        earlier request is skipped, never taken for this one."""
        def accept(raw: bytes) -> bool:
            f = codec.fr.reply_from(codec.LAYOUT, raw, self.address)
            if f is None or f.control & 0x3F != codec.Control.READ:
                return False
            if f.control & codec.ERROR:
                return True
            return codec.di_matches(f.data, codec.DI_READ) and (
                not self.config.check_ser or (len(f.data) > 2 and f.data[2] == ser))
        return accept

    async def read_meter(self) -> codec.Reading:
        """One 901F read; MeterError when refused, ProtocolError when garbled, DeviceTimeout when silent."""
        ser = next(self._ser) & 0xFF
        request = codec.read_request(self.config.type_byte, self.address, ser, wake=self.config.wake)
        raw = await self.port.transact(request, read_until=self._scan, accept=self._answer(ser),
                                       timeout=self.config.request_timeout)
        assert raw is not None
        return codec.parse_read_reply(codec.decode(raw), self.family, ser if self.config.check_ser else None)

    async def read(self) -> list[Sample]:
        r = await self.read_meter()
        values = dict(r.values)
        for key in ("heat", "heat_settlement"):
            if key in values:
                values[key] *= self.heat_factor
        if PROFILES[self.config.profile].medium == "cooling":
            values["cooling"], values["cooling_settlement"] = values.pop("heat"), values.pop("heat_settlement")
        values |= {"valve": float(r.valve), "battery_low": float(r.battery_low), "status": float(r.status)}
        if r.clock is not None:
            gateway = datetime.fromtimestamp(self.clock.now_ms() / 1000, self._tz).replace(tzinfo=None)
            values["clock_offset"] = round((r.clock - gateway).total_seconds(), 1)
        return [Sample(m.name, values[m.name]) for m in self.specs if m.name in values]

    async def close(self) -> None:
        """Nothing to release: the line belongs to the agent."""
