"""SDS011 simulator: speaks the real protocol (report mode, query, sleep/work, firmware) over a pty."""

from __future__ import annotations

import asyncio

import click

from agent.contract import SimulatorSpec
from agent.simkit.serial_pty import SerialDeviceSim, serve_forever, sim_options

from . import codec


class Sds011Sim(SerialDeviceSim):
    scanner = staticmethod(codec.scan_command)

    def __init__(self, *, pm2_5: float = 12.3, pm10: float = 45.6, device_id: int = 0xA160,
                 query_mode: bool = False, interval: float = 1.0, vary: bool = False, **kw):
        super().__init__(**kw)
        self.pm2_5, self.pm10 = pm2_5, pm10
        self.device_id = device_id
        self.query_mode = query_mode  # survives power-off on the real sensor
        self.asleep = False
        self.interval = interval
        self.vary = vary
        self.wakes = self.sleeps = self.queries = 0

    def _data(self) -> bytes:
        if self.vary:
            self.pm2_5 = max(0.0, round(self.pm2_5 + self.rng.uniform(-0.5, 0.5), 1))
            self.pm10 = max(self.pm2_5, round(self.pm10 + self.rng.uniform(-0.8, 0.8), 1))
        return codec.encode_data(self.pm2_5, self.pm10, self.device_id)

    async def stream(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.query_mode and not self.asleep and self.plugged:
                self.send(self._data())

    def _reply(self, cmd: int, d1: int = 0, d2: int = 0, d3: int = 0) -> None:
        self.send(codec.encode(codec.REPLY, bytes((cmd, d1, d2, d3)), self.device_id))

    def handle(self, request: bytes) -> None:
        cmd, data, target = request[2], request[3:15], int.from_bytes(request[15:17], "big")
        if target not in (codec.ALL_SENSORS, self.device_id):
            return
        if cmd == codec.CMD_SLEEP:
            if data[0] == 1:
                self.asleep = data[1] == 0
                if self.asleep:
                    self.sleeps += 1
                else:
                    self.wakes += 1
            self._reply(cmd, data[0], 0 if self.asleep else 1)
        elif self.asleep:
            return  # a sleeping sensor ignores everything but "work"
        elif cmd == codec.CMD_REPORT_MODE:
            if data[0] == 1:
                self.query_mode = data[1] == 1
            self._reply(cmd, data[0], int(self.query_mode))
        elif cmd == codec.CMD_QUERY:
            self.queries += 1
            self.send(self._data())
        elif cmd == codec.CMD_FIRMWARE:
            self._reply(cmd, 24, 1, 15)
        elif cmd == codec.CMD_PERIOD:
            self._reply(cmd, data[0], data[1])


async def start(*, link: str | None = None, vary: bool = True, fault_rate: float = 0.0,
                seed: int | None = None) -> Sds011Sim:
    """Start a simulator on a new pty; ``.path`` is what to configure, ``.stop()`` ends it."""
    return await Sds011Sim(link=link, vary=vary, fault_rate=fault_rate, seed=seed).start()


@click.command("sds011")
@sim_options
@click.option("--pm2-5", "pm25", type=click.FloatRange(0, 999.9), default=12.3, help="PM2.5 to report (ug/m3).")
@click.option("--pm10", type=click.FloatRange(0, 999.9), default=45.6, help="PM10 to report (ug/m3).")
@click.option("--steady", is_flag=True, help="Report constant values (default: a slow random walk).")
def command(link, port, fault_rate, seed, pm25, pm10, steady) -> None:
    """Simulate a Nova SDS011 particulate sensor."""
    sim = Sds011Sim(pm2_5=pm25, pm10=pm10, vary=not steady, link=link, port=port, fault_rate=fault_rate, seed=seed)
    serve_forever(sim, describe="SDS011 simulator", device_type="sds011")


SIMULATOR = SimulatorSpec(name="sds011", summary="Nova SDS011 over a pty (query mode, sleep/work, faults).",
                          command=command, start=start)
