"""The simulator: the device end of a pseudo-terminal (``edge-agent simulate example-thermometer``)."""

from __future__ import annotations

import click

from agent.contract import FrameScan, SimulatorSpec
from agent.simkit.serial_pty import SerialDeviceSim, serve_forever, sim_options

from . import protocol


def scan_request(buf: bytes | bytearray) -> FrameScan:
    end = buf.find(b"\n")
    return FrameScan(0) if end < 0 else FrameScan(end + 1, frame=bytes(buf[: end + 1]))


class ThermometerSim(SerialDeviceSim):
    scanner = staticmethod(scan_request)

    def __init__(self, *, temperature: float = 21.5, humidity: float = 45.0, **kw):
        super().__init__(**kw)
        self.temperature = temperature
        self.humidity = humidity
        self.alarm_high = 60.0

    def handle(self, request: bytes) -> None:
        if request == protocol.READ:
            self.send(protocol.encode(self.temperature, self.humidity))
        elif (m := protocol.SET_ALARM.fullmatch(request)) is not None:
            self.alarm_high = float(m[1])
            self.send(protocol.encode_alarm(self.alarm_high))


async def start(*, temperature: float = 21.5, humidity: float = 45.0, link: str | None = None) -> ThermometerSim:
    """Start on a new pty; ``.path`` is the port to configure, ``.stop()`` ends it."""
    return await ThermometerSim(temperature=temperature, humidity=humidity, link=link).start()


@click.command("example-thermometer")
@sim_options
@click.option("--temperature", type=float, default=21.5, show_default=True, help="Temperature to report (degC).")
def command(link, port, fault_rate, seed, temperature) -> None:
    """Simulate the example thermometer."""
    sim = ThermometerSim(temperature=temperature, link=link, port=port, fault_rate=fault_rate, seed=seed)
    serve_forever(sim, describe="example thermometer", device_type="example_thermometer")


SIMULATOR = SimulatorSpec(name="example-thermometer", summary="The example thermometer over a pty.",
                          command=command, start=start)
