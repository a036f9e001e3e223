"""The driver: its config (a serial device: the ``line`` key), its metrics, one request per poll."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import DriverContext, MetricSpec, Sample, SerialDevice, SerialPort

from . import protocol


class ThermometerConfig(SerialDevice):
    type: Literal["example_thermometer"]
    offset: float = Field(0.0, ge=-10, le=10, description="Calibration offset added to the temperature (degC).")


class ThermometerDriver:
    def __init__(self, config: ThermometerConfig, ctx: DriverContext):
        self.config = config
        self.port: SerialPort = ctx.buses.get(config.line)

    def metrics(self) -> list[MetricSpec]:
        return [MetricSpec("temperature", "degC", valid_min=-40.0, valid_max=125.0),
                MetricSpec("humidity", "%", valid_min=0.0, valid_max=100.0)]

    async def open(self) -> None:
        """Nothing to set up: the port opens on the first transfer."""

    async def read(self) -> list[Sample]:
        # Silence raises DeviceTimeout, a lost port BusUnavailable, a bad line ProtocolError.
        frame = await self.port.transact(protocol.READ, read_until=protocol.scan, timeout=self.config.timeout * 0.9)
        temperature, humidity = protocol.decode(frame)
        return [Sample("temperature", temperature + self.config.offset), Sample("humidity", humidity)]

    async def close(self) -> None:
        """Nothing to release: the line belongs to the agent."""
