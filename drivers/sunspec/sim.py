"""A SunSpec PV + battery inverter on a real pymodbus server (TCP, or RTU framing on a socket).

The register map is a real SunSpec chain: ``SunS`` at the base (40000 by default), common model 1,
inverter 103, immediate controls 123, storage 124, battery 802, meter 203 (the grid connection point),
end marker; or the 7xx DER chain (701 AC measurement, 702 capacity, 704 AC controls, 713 storage
capacity) instead of or beside the 1xx models. Every request renders the registers from the physics
(:mod:`.simmodel`) at that moment (:mod:`.simrender`); writes to 123 or 704 (WMaxLimPct and its enable)
cap the PV output and writes to 124 (StorCtl_Mod, InWRte, OutWRte) set the battery's power, as on a
real hybrid inverter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import click
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.contract import SimulatorSpec
from agent.simkit.net import parse_hostport, run_until_interrupted, serve_in_background
from agent.simkit.snippets import banner, modbus_line, snippet_for_device

from .codec import decode_point, encode_point, raw_int
from .models import END_ID, SUNS, model
from .simmodel import Battery, Plant, PvArray
from .simrender import RENDER, SF, _nothing

CHAIN = (1, 103, 123, 124, 802, 203)  # the 1xx chain
DER_CHAIN = (1, 701, 702, 704, 713, 124, 203)  # the 7xx DER chain (IEEE 1547 models), storage control by 124
BOTH_CHAIN = (1, 103, 123, 124, 701, 702, 704, 713, 802, 203)  # both, side by side
CHAINS = {"1xx": CHAIN, "7xx": DER_CHAIN, "both": BOTH_CHAIN}


class SunSpecSim(Plant):
    """One hybrid inverter: PV, battery and the grid meter at the connection point, behind a SunSpec map.

    ``chain`` picks the models served: the 1xx chain (default), the 7xx DER chain, or both side by side.
    """

    def __init__(self, *, base: int = 40000, pv: PvArray | None = None, battery: Battery | None = None,
                 load_w: Callable[[float], float] | float = 20_000.0, start_hour: float = 12.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, chain: tuple[int, ...] = CHAIN):
        super().__init__(pv=pv, battery=battery, load_w=load_w, start_hour=start_hour, speed=speed, clock=clock)
        self.base = base
        self.chain = chain
        self.writes: list[tuple[int, str, float]] = []
        self.layout: dict[int, int] = {}
        addr = base + 2
        for mid in chain:
            self.layout[mid] = addr
            addr += 2 + model(mid).full_length
        self.count = addr + 2 - base
        self.regs = [0] * self.count
        self.regs[0:2] = list(SUNS)
        for mid, a in self.layout.items():
            self.regs[a - base: a - base + 2] = [mid, model(mid).full_length]
            for name, sf in SF.get(mid, {}).items():
                self._set(mid, name, sf)
        self.regs[addr - base: addr - base + 2] = [END_ID, 0]
        self._set(1, "Mn", 0, text="EdgeSim")
        self._set(1, "Md", 0, text="Hybrid-100")
        self._set(1, "SN", 0, text="SIM0001")
        self.render()

    # --- register image -----------------------------------------------------------------------
    def _set(self, mid: int, name: str, value: float, *, text: str | None = None) -> None:
        m = model(mid)
        p = m.points[name]
        i = self.layout[mid] - self.base + p.offset
        if text is not None:
            raw = text.encode("ascii")[: 2 * p.size].ljust(2 * p.size, b"\0")
            words = [int.from_bytes(raw[k:k + 2], "big") for k in range(0, len(raw), 2)]
        else:
            sf = SF.get(mid, {}).get(p.sf) if isinstance(p.sf, str) else None
            words = encode_point(p, value, sf)
        self.regs[i:i + p.size] = words

    def _get(self, mid: int, name: str) -> float:
        p = model(mid).points[name]
        i = self.layout[mid] - self.base + p.offset
        sf = SF.get(mid, {}).get(p.sf) if isinstance(p.sf, str) else None
        return decode_point(p, self.regs[i:i + p.size], sf)

    def render(self) -> None:
        self.advance()
        t = self.now()
        pv, grid = self.pv_w(t), self.grid_w()
        for mid in self.layout:
            RENDER.get(mid, _nothing)(self, pv, grid)

    def _touched(self, mid: int, address: int, n: int) -> bool:
        """Whether a write of ``n`` registers at ``address`` hit a writable point of ``mid`` (each is logged)."""
        if mid not in self.layout:
            return False
        a, hit = self.layout[mid], False
        for name, p in model(mid).points.items():
            if p.writable and a + p.offset < address + n and address < a + p.offset + p.size:
                self.writes.append((mid, name, self._get(mid, name)))
                hit = True
        return hit

    def _write(self, address: int, values: list[int]) -> None:
        """A write landed at ``address``: keep it in the image, then act on it like the device would."""
        i = address - self.base
        self.regs[i:i + len(values)] = values
        n = len(values)
        if self._touched(123, address, n):
            self.limit_pct = max(0.0, min(100.0, self._get(123, "WMaxLimPct")))
            self.limit_on = self._get(123, "WMaxLim_Ena") == 1
        if self._touched(704, address, n):
            self.limit_pct = max(0.0, min(100.0, self._get(704, "WMaxLimPct")))
            self.limit_on = self._get(704, "WMaxLimPctEna") == 1
        if self._touched(124, address, n):
            mod = int(raw_int([self.regs[self.layout[124] - self.base + model(124).points["StorCtl_Mod"].offset]]))
            rating = self.battery.max_charge_w
            charge = self._get(124, "InWRte") if mod & 1 else 0.0
            discharge = self._get(124, "OutWRte") if mod & 2 else 0.0
            self.advance()
            self.battery.setpoint_w = (max(0.0, discharge) - max(0.0, charge)) * rating / 100.0

    def device(self, unit: int) -> SimDevice:
        return SimDevice(id=unit, simdata=[SimData(self.base, count=self.count, values=0, datatype=DataType.UINT16)],
                         action=self._action)

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
        if values is not None:
            self._write(address, [int(v) for v in values])
        else:
            self.render()
        off = self.base - start
        regs[off:off + self.count] = self.regs
        return None


class SunSpecSimHandle:
    def __init__(self, server: Any, sims: dict[int, SunSpecSim], address: str):
        self.server = server
        self.sims = sims
        self.address = address

    @property
    def sim(self) -> SunSpecSim:
        return self.sims[next(iter(self.sims))]

    async def stop(self) -> None:
        await self.server.shutdown()
        await asyncio.sleep(0)


async def serve(devices: list[SimDevice], *, tcp: str | None, rtu_socket: str | None) -> tuple[Any, str]:
    """A pymodbus server for ``devices`` on Modbus TCP or RTU framing on a socket, serving in the background."""
    if rtu_socket is not None:
        server: Any = ModbusSerialServer(devices, port=f"socket://{rtu_socket}", framer=FramerType.RTU)
        where = f"socket://{rtu_socket}"
    else:
        assert tcp is not None
        host, _, port = tcp.rpartition(":")
        server = ModbusTcpServer(devices, address=(host or "127.0.0.1", int(port)))
        where = tcp
    await serve_in_background(server, where)
    return server, where


async def start(*, tcp: str | None = "127.0.0.1:5503", rtu_socket: str | None = None, unit: int = 1,
                base: int = 40000, sim: SunSpecSim | None = None, **kw: Any) -> SunSpecSimHandle:
    """Serve one SunSpec hybrid inverter (``sim`` or one built from ``kw``) on Modbus TCP or RTU-on-socket."""
    s = sim or SunSpecSim(base=base, **kw)
    server, where = await serve([s.device(unit)], tcp=tcp, rtu_socket=rtu_socket)
    return SunSpecSimHandle(server, {unit: s}, where)


def config_snippet(unit: int, tcp: str, chain: str = "1xx") -> str:
    host, port = parse_hostport(tcp, "--tcp")
    models = [701, 702, 704, 124, 713, 203] if chain == "7xx" else [103, 123, 124, 802, 203]
    device = {"type": "sunspec", "unit": unit, "models": models,
              "writable": ["power_limit", "battery_power"], "battery_max_w": 100000}
    return banner(snippet_for_device(*modbus_line(tcp=(host, port)), f"sunspec-{unit}", device))


PLANT_OPTIONS = (
    click.option("--lat", type=float, default=31.2, show_default=True, help="Site latitude (degrees)."),
    click.option("--day", type=click.IntRange(1, 366), default=172, show_default=True, help="Day of the year."),
    click.option("--hour", type=float, default=12.0, show_default=True, help="Solar hour to start at."),
    click.option("--cloudiness", type=click.FloatRange(0, 1), default=0.0, show_default=True),
    click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per real second."),
)


def plant_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The plant's command-line options (--lat --day --hour --cloudiness --speed), for every PV simulator."""
    for option in reversed(PLANT_OPTIONS):
        f = option(f)
    return f


async def watch(sim: Any, stop: Callable[[], Awaitable[None]]) -> None:
    """Print the plant's PV, battery and grid every 10 s until cancelled, then ``stop`` the server."""
    try:
        while True:
            await asyncio.sleep(10)
            sim.render()
            click.echo(f"pv {sim.pv_w(sim.now()) / 1000:.1f} kW  battery {sim.battery.power_w / 1000:.1f} kW "
                       f"soc {sim.battery.soc * 100:.1f} %  grid {sim.grid_w() / 1000:.1f} kW")
    finally:
        await stop()


@click.command(name="sunspec", help="Simulate a SunSpec hybrid inverter: PV on a clear-sky curve with clouds, a battery, a grid meter.")
@click.option("--tcp", metavar="HOST:PORT", default="127.0.0.1:5503", show_default=True)
@click.option("--unit", type=click.IntRange(1, 247), default=1, show_default=True)
@plant_options
@click.option("--chain", type=click.Choice(sorted(CHAINS)), default="1xx", show_default=True,
              help="SunSpec models served: 1xx (103, 123, 124, 802, 203), 7xx (701, 702, 704, 713, 124, 203) or both.")
def command(tcp: str, unit: int, lat: float, day: int, hour: float, cloudiness: float, speed: float,
            chain: str) -> None:
    parse_hostport(tcp, "--tcp")

    async def main() -> None:
        pv = PvArray(lat_deg=lat, day_of_year=day, cloudiness=cloudiness)
        h = await start(tcp=tcp, unit=unit, pv=pv, start_hour=hour, speed=speed, chain=CHAINS[chain])
        click.echo(f"SunSpec hybrid inverter unit {unit} serving on {tcp}; Ctrl-C to stop")
        click.echo(config_snippet(unit, tcp, chain))
        await watch(h.sim, h.stop)

    run_until_interrupted(main)


SIMULATOR = SimulatorSpec(name="sunspec", summary="SunSpec hybrid inverter (PV with clouds, battery, grid meter)",
                          command=command, start=start)
