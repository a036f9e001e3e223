"""MH-Z19B simulator: answers read, ABC, range and calibration requests over a pty."""

from __future__ import annotations

import click

from agent.contract import SimulatorSpec
from agent.simkit.serial_pty import SerialDeviceSim, serve_forever, sim_options

from . import codec
from .codec import Mhz19Reading


class Mhz19Sim(SerialDeviceSim):
    scanner = staticmethod(codec.scan_request)

    def __init__(self, *, co2: int = 500, temperature: int = 24, vary: bool = False, **kw):
        super().__init__(**kw)
        self.co2 = co2
        self.temperature = temperature
        self.vary = vary
        self.abc: bool | None = None
        self.detection_range = 5000
        self.reads = 0

    def handle(self, request: bytes) -> None:
        cmd = request[2]
        if cmd == codec.CMD_READ:
            self.reads += 1
            if self.vary:
                self.co2 = min(self.detection_range, max(400, self.co2 + self.rng.randint(-15, 15)))
            self.send(codec.encode_reading(Mhz19Reading(self.co2, self.temperature, 0)))
        elif cmd == codec.CMD_ABC:
            self.abc = request[3] == 0xA0
            self.send(codec.encode_reply(cmd, b"\x01"))
        elif cmd == codec.CMD_RANGE:
            self.detection_range = int.from_bytes(request[6:8], "big")
            self.send(codec.encode_reply(cmd, b"\x01"))
        elif cmd == codec.CMD_ZERO:
            self.co2 = 400


async def start(*, link: str | None = None, co2: int = 650, vary: bool = True, fault_rate: float = 0.0,
                seed: int | None = None) -> Mhz19Sim:
    """Start a simulator on a new pty; ``.path`` is what to configure, ``.stop()`` ends it."""
    return await Mhz19Sim(link=link, co2=co2, vary=vary, fault_rate=fault_rate, seed=seed).start()


@click.command("mhz19")
@sim_options
@click.option("--co2", type=click.IntRange(0, 10000), default=650, help="CO2 to report (ppm).")
@click.option("--steady", is_flag=True, help="Report a constant value (default: a slow random walk).")
def command(link, port, fault_rate, seed, co2, steady) -> None:
    """Simulate a Winsen MH-Z19B CO2 sensor."""
    sim = Mhz19Sim(co2=co2, vary=not steady, link=link, port=port, fault_rate=fault_rate, seed=seed)
    serve_forever(sim, describe="MH-Z19B simulator", device_type="mhz19")


SIMULATOR = SimulatorSpec(name="mhz19", summary="Winsen MH-Z19B CO2 over a pty (ABC, range, faults).",
                          command=command, start=start)
