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
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.contract import DriverContext, MetricSpec, Sample, SerialPort
from agent.contract.lazy import lazy_exports

from . import codec
from .profiles import PROFILES, metrics

log = logging.getLogger("edge_agent.drivers.cjt188")
DEFAULT_MAX_FLOW = {"water": 10.0, "gas": 10.0, "heat": 10.0}  # m3/h: DN15-DN25 meters, a G6 gas meter
DEFAULT_MAX_POWER = 1000.0  # kW: 10 m3/h at a 86 K spread

if TYPE_CHECKING:
    from .config import Cjt188Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Cjt188Config": "drivers.cjt188.config"})


class Cjt188Base:
    """Mixin of :class:`~.config.Cjt188Config` (and its plain twin): what the driver asks of the config."""

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
