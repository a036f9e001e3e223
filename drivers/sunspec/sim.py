"""A SunSpec PV + battery inverter on a real pymodbus server (TCP, or RTU framing on a socket).

The register map is a real SunSpec chain: ``SunS`` at the base (40000 by default), common model 1,
inverter 103, immediate controls 123, storage 124, battery 802, meter 203 (the grid connection point),
end marker. Every request renders the registers from the physics (:mod:`.simmodel`) at that moment;
writes to 123 (WMaxLimPct, WMaxLim_Ena) cap the PV output and writes to 124 (StorCtl_Mod, InWRte,
OutWRte) set the battery's power, as on a real hybrid inverter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
from .simmodel import Battery, PvArray

CHAIN = (1, 103, 123, 124, 802, 203)
SF = {  # the scale factors this device reports
    103: {"A_SF": -1, "V_SF": -1, "W_SF": 1, "Hz_SF": -2, "VA_SF": 1, "VAr_SF": 1, "PF_SF": -1, "WH_SF": 0,
          "DCA_SF": -1, "DCV_SF": -1, "DCW_SF": 1, "Tmp_SF": -1},
    123: {"WMaxLimPct_SF": 0, "OutPFSet_SF": -3, "VArPct_SF": 0},
    124: {"WChaMax_SF": 1, "WChaDisChaGra_SF": 0, "VAChaMax_SF": 1, "MinRsvPct_SF": 0, "ChaState_SF": -1,
          "StorAval_SF": 0, "InBatV_SF": -1, "InOutWRte_SF": -1},
    802: {"AHRtg_SF": 0, "WHRtg_SF": 2, "WChaDisChaMax_SF": 1, "DisChaRte_SF": 0, "SoC_SF": -1, "DoD_SF": -1,
          "SoH_SF": 0, "V_SF": -1, "CellV_SF": -3, "A_SF": -1, "AMax_SF": 0, "W_SF": 1},
    203: {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": 1, "VA_SF": 1, "VAR_SF": 1, "PF_SF": -1, "TotWh_SF": 0,
          "TotVAh_SF": 0, "TotVArh_SF": 0},
}


class SunSpecSim:
    """One hybrid inverter: PV, battery and the grid meter at the connection point."""

    def __init__(self, *, base: int = 40000, pv: PvArray | None = None, battery: Battery | None = None,
                 load_w: Callable[[float], float] | float = 20_000.0, start_hour: float = 12.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.base = base
        self.pv = pv or PvArray()
        self.battery = battery or Battery()
        self.load_w = load_w
        self.start_hour = start_hour
        self.speed = speed
        self._clock = clock
        self._t0 = clock()
        self._last = 0.0
        self.limit_pct = 100.0
        self.limit_on = False
        self.pv_wh = 0.0
        self.import_wh = 0.0
        self.export_wh = 0.0
        self.writes: list[tuple[int, str, float]] = []
        self.layout: dict[int, int] = {}
        addr = base + 2
        for mid in CHAIN:
            self.layout[mid] = addr
            addr += 2 + model(mid).length
        self.count = addr + 2 - base
        self.regs = [0] * self.count
        self.regs[0:2] = list(SUNS)
        for mid, a in self.layout.items():
            self.regs[a - base: a - base + 2] = [mid, model(mid).length]
            for name, sf in SF.get(mid, {}).items():
                self._set(mid, name, sf)
        self.regs[addr - base: addr - base + 2] = [END_ID, 0]
        self._set(1, "Mn", 0, text="EdgeSim")
        self._set(1, "Md", 0, text="Hybrid-100")
        self._set(1, "SN", 0, text="SIM0001")
        self.render()

    # --- time and physics ---------------------------------------------------------------------
    def now(self) -> float:
        return (self._clock() - self._t0) * self.speed

    def solar_hour(self, t: float | None = None) -> float:
        return self.start_hour + (self.now() if t is None else t) / 3600.0

    def load(self, t: float) -> float:
        return self.load_w(t) if callable(self.load_w) else float(self.load_w)

    def pv_available_w(self, t: float) -> float:
        return self.pv.power_w(self.solar_hour(t))

    def pv_w(self, t: float) -> float:
        avail = self.pv_available_w(t)
        return min(avail, self.pv.peak_w * self.limit_pct / 100.0) if self.limit_on else avail

    def advance(self) -> None:
        t = self.now()
        dt = max(0.0, t - self._last)
        self._last = t
        self.pv.step_clouds(dt)
        self.battery.advance(dt)
        pv = self.pv_w(t)
        grid = self.load(t) - pv - self.battery.power_w
        self.pv_wh += pv * dt / 3600.0
        self.import_wh += max(grid, 0.0) * dt / 3600.0
        self.export_wh += max(-grid, 0.0) * dt / 3600.0

    def grid_w(self) -> float:
        t = self.now()
        return self.load(t) - self.pv_w(t) - self.battery.power_w

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
        b = self.battery
        pv, grid = self.pv_w(t), self.grid_w()
        avail = self.pv_available_w(t)
        v = 230.0
        s = self._set
        s(103, "W", pv)
        s(103, "A", pv / v / 3)
        for ph in "ABC":
            s(103, f"Aph{ph}", pv / v / 3)
            s(103, f"PhVph{ph}", v)
        s(103, "Hz", 50.0)
        s(103, "WH", self.pv_wh)
        s(103, "DCW", pv / 0.97)
        s(103, "TmpCab", 35.0)
        s(103, "St", 2 if avail <= 0 else (5 if self.limit_on and avail > pv + 1 else 4))
        s(123, "WMaxLimPct", self.limit_pct)
        s(123, "WMaxLim_Ena", 1 if self.limit_on else 0)
        s(124, "WChaMax", b.max_charge_w)
        s(124, "ChaState", b.soc * 100)
        s(124, "ChaSt", 5 if b.soc >= b.soc_max else 2 if b.soc <= b.soc_min else
          4 if b.power_w < 0 else 3 if b.power_w > 0 else 6)
        s(124, "MinRsvPct", b.soc_min * 100)
        s(802, "WHRtg", b.capacity_wh)
        s(802, "WChaRteMax", b.max_charge_w)
        s(802, "WDisChaRteMax", b.max_discharge_w)
        s(802, "SoCMax", b.soc_max * 100)
        s(802, "SoCMin", b.soc_min * 100)
        s(802, "SoC", b.soc * 100)
        s(802, "SoH", 98)
        s(802, "V", 600.0)
        s(802, "A", b.power_w / 600.0)
        s(802, "W", b.power_w)
        s(203, "W", grid)
        for ph in "ABC":
            s(203, f"Wph{ph}", grid / 3)
            s(203, f"PhVph{ph}", v)
            s(203, f"Aph{ph}", grid / v / 3)
        s(203, "A", grid / v)
        s(203, "PhV", v)
        s(203, "Hz", 50.0)
        s(203, "TotWhImp", self.import_wh)
        s(203, "TotWhExp", self.export_wh)

    def _write(self, address: int, values: list[int]) -> None:
        """A write landed at ``address``: keep it in the image, then act on it like the device would."""
        i = address - self.base
        self.regs[i:i + len(values)] = values
        for mid in (123, 124):
            a = self.layout[mid]
            m = model(mid)
            for name, p in m.points.items():
                if p.writable and a + p.offset < address + len(values) and address < a + p.offset + p.size:
                    self.writes.append((mid, name, self._get(mid, name)))
        self.limit_pct = max(0.0, min(100.0, self._get(123, "WMaxLimPct")))
        self.limit_on = self._get(123, "WMaxLim_Ena") == 1
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


async def start(*, tcp: str | None = "127.0.0.1:5503", rtu_socket: str | None = None, unit: int = 1,
                base: int = 40000, sim: SunSpecSim | None = None, **kw: Any) -> SunSpecSimHandle:
    """Serve one SunSpec hybrid inverter (``sim`` or one built from ``kw``) on Modbus TCP or RTU-on-socket."""
    s = sim or SunSpecSim(base=base, **kw)
    dev = [s.device(unit)]
    if rtu_socket is not None:
        server: Any = ModbusSerialServer(dev, port=f"socket://{rtu_socket}", framer=FramerType.RTU)
        where = f"socket://{rtu_socket}"
    else:
        assert tcp is not None
        host, _, port = tcp.rpartition(":")
        server = ModbusTcpServer(dev, address=(host or "127.0.0.1", int(port)))
        where = tcp
    await serve_in_background(server, where)
    return SunSpecSimHandle(server, {unit: s}, where)


def config_snippet(unit: int, tcp: str) -> str:
    host, port = parse_hostport(tcp, "--tcp")
    device = {"type": "sunspec", "unit": unit, "models": [103, 123, 124, 802, 203],
              "writable": ["power_limit", "battery_power"], "battery_max_w": 100000}
    return banner(snippet_for_device(*modbus_line(tcp=(host, port)), f"sunspec-{unit}", device))


@click.command(name="sunspec", help="Simulate a SunSpec hybrid inverter: PV on a clear-sky curve with clouds, a battery, a grid meter.")
@click.option("--tcp", metavar="HOST:PORT", default="127.0.0.1:5503", show_default=True)
@click.option("--unit", type=click.IntRange(1, 247), default=1, show_default=True)
@click.option("--lat", type=float, default=31.2, show_default=True, help="Site latitude (degrees).")
@click.option("--day", type=click.IntRange(1, 366), default=172, show_default=True, help="Day of the year.")
@click.option("--hour", type=float, default=12.0, show_default=True, help="Solar hour to start at.")
@click.option("--cloudiness", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per real second.")
def command(tcp: str, unit: int, lat: float, day: int, hour: float, cloudiness: float, speed: float) -> None:
    parse_hostport(tcp, "--tcp")

    async def main() -> None:
        pv = PvArray(lat_deg=lat, day_of_year=day, cloudiness=cloudiness)
        h = await start(tcp=tcp, unit=unit, pv=pv, start_hour=hour, speed=speed)
        click.echo(f"SunSpec hybrid inverter unit {unit} serving on {tcp}; Ctrl-C to stop")
        click.echo(config_snippet(unit, tcp))
        try:
            while True:
                await asyncio.sleep(10)
                s = h.sim
                s.render()
                click.echo(f"pv {s.pv_w(s.now()) / 1000:.1f} kW  battery {s.battery.power_w / 1000:.1f} kW "
                           f"soc {s.battery.soc * 100:.1f} %  grid {s.grid_w() / 1000:.1f} kW")
        finally:
            await h.stop()

    run_until_interrupted(main)


SIMULATOR = SimulatorSpec(name="sunspec", summary="SunSpec hybrid inverter (PV with clouds, battery, grid meter)",
                          command=command, start=start)
