"""The driver: its config (a serial device: the ``line`` key), its metrics, one request per poll, and
its points: the alarm threshold, writable when the config lists it in ``writable``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import DeviceError, DriverContext, MetricSpec, Point, Sample, SerialDevice, SerialPort

from . import protocol


class ThermometerConfig(SerialDevice):
    type: Literal["example_thermometer"]
    offset: float = Field(0.0, ge=-10, le=10, description="Calibration offset added to the temperature (degC).")
    writable: tuple[Literal["alarm_high"], ...] = Field((), description='Points commands may write: "alarm_high".')

    def points(self) -> list[Point]:
        """What the device can be told (agent.contract.DeclaresPoints); the write gate checks this."""
        return [Point("alarm_high", unit="degC", low=-40.0, high=125.0, writable="alarm_high" in self.writable,
                      meaning="the device raises its alarm output above this temperature")]

    def aliases(self) -> dict[str, str]:
        return {"set_alarm": "alarm_high"}  # {"action": "set_alarm", "value": 30} = write alarm_high


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

    async def write(self, point: str, value: float | None) -> float:
        """A write the gate has checked against :meth:`ThermometerConfig.points`; returns the threshold in force."""
        if point != "alarm_high" or value is None:
            raise DeviceError(f"{point!r} is not a point of the example thermometer")
        frame = await self.port.transact(protocol.set_alarm(value), read_until=protocol.scan,
                                         timeout=self.config.timeout * 0.9)
        return protocol.decode_alarm(frame)

    async def close(self) -> None:
        """Nothing to release: the line belongs to the agent."""
