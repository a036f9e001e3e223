"""PMS5003 simulator: speaks the real protocol (active and passive mode, sleep/wake) over a pty."""

from __future__ import annotations

import asyncio
import dataclasses

import click

from agent.contract import SimulatorSpec
from agent.simkit.serial_pty import SerialDeviceSim, serve_forever, sim_options

from . import codec
from .codec import Pms5003Reading

DEFAULT = Pms5003Reading(10, 15, 20, 10, 15, 20, 3000, 900, 200, 30, 5, 1, 0x91, 0)


def with_pm2_5(r: Pms5003Reading, pm: int) -> Pms5003Reading:
    """``r`` at PM2.5 = ``pm``, PM1.0 and PM10 scaled with it (both CF=1 and atmospheric), as a real sensor keeps them."""
    lo, hi = pm * 2 // 3, pm * 4 // 3
    return dataclasses.replace(r, pm1_0=lo, pm2_5=pm, pm10=hi, pm1_0_cf1=lo, pm2_5_cf1=pm, pm10_cf1=hi)


class Pms5003Sim(SerialDeviceSim):
    scanner = staticmethod(codec.scan_command)

    def __init__(self, *, reading: Pms5003Reading = DEFAULT, active: bool = True, interval: float = 1.0,
                 vary: bool = False, **kw):
        super().__init__(**kw)
        self.reading = reading
        self.active = active  # power-on default of the real sensor
        self.asleep = False
        self.interval = interval
        self.vary = vary
        self.commands: list[bytes] = []

    def _next_reading(self) -> Pms5003Reading:
        if self.vary:
            r = self.reading
            self.reading = with_pm2_5(r, max(0, r.pm2_5 + self.rng.randint(-2, 2)))
        return self.reading

    async def stream(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.active and not self.asleep and self.plugged:
                self.send(codec.encode(self._next_reading()))

    def handle(self, request: bytes) -> None:
        self.commands.append(request)
        cmd, data = request[2], int.from_bytes(request[3:5], "big")
        if cmd == codec.CMD_MODE:
            self.active = data == 1
        elif cmd == codec.CMD_SLEEP:
            self.asleep = data == 0
        elif cmd == codec.CMD_READ and not self.active and not self.asleep:
            self.send(codec.encode(self._next_reading()))


async def start(*, link: str | None = None, active: bool = True, interval: float = 1.0, vary: bool = True,
                fault_rate: float = 0.0, seed: int | None = None) -> Pms5003Sim:
    """Start a simulator on a new pty; ``.path`` is what to configure, ``.stop()`` ends it."""
    return await Pms5003Sim(link=link, active=active, interval=interval, vary=vary,
                            fault_rate=fault_rate, seed=seed).start()


@click.command("pms5003")
@sim_options
@click.option("--pm2-5", "pm25", type=click.IntRange(0, 65535), default=15, help="PM2.5 to report (ug/m3).")
@click.option("--steady", is_flag=True, help="Report constant values (default: a slow random walk).")
def command(link, port, fault_rate, seed, pm25, steady) -> None:
    """Simulate a Plantower PMS5003 particulate sensor."""
    reading = with_pm2_5(DEFAULT, pm25)
    sim = Pms5003Sim(reading=reading, vary=not steady, link=link, port=port, fault_rate=fault_rate, seed=seed)
    serve_forever(sim, describe="PMS5003 simulator", device_type="pms5003")


SIMULATOR = SimulatorSpec(name="pms5003", summary="Plantower PMS5003 over a pty (active/passive, faults).",
                          command=command, start=start)
