"""Vendor-map inverters (Huawei SUN2000, Sungrow SH) on a real pymodbus server, built from their profiles.

The plant is the SunSpec simulator's (PV on a clear-sky curve with clouds, a battery with ramp and
state-of-charge bounds, a load, the grid): only the register map differs. Every read renders each
profile register from the plant at that moment, encoded as the profile says (type, word order, scale);
writes land in the image and are read back through the profile's points the way the device acts on
them: a battery sequence sets the battery's power, ``power_limit`` caps the PV output, ``export_limit_w``
caps the feed-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.contract import SimulatorSpec
from agent.contract.modbus_values import register_count
from agent.simkit.net import parse_hostport, run_until_interrupted
from agent.simkit.snippets import banner, modbus_line, snippet_for_device
from drivers.sunspec.sim import Battery, Plant, PvArray, plant_options, serve, watch

from .profile import PointKind, PointSpec, Profile, load_profile

HUAWEI_STATE = {2: 0xA000, 4: 0x0200, 5: 0x0201}  # plant state (as SunSpec 103 St) -> Huawei 32089 status
DC_EFFICIENCY = 0.98  # PV DC power -> AC


class InverterSim(Plant):
    """One inverter of ``profile`` with PV, a battery and a grid meter."""

    def __init__(self, profile: str = "huawei_sun2000", *, pv: PvArray | None = None, battery: Battery | None = None,
                 load_w: Callable[[float], float] | float = 20_000.0, start_hour: float = 12.0, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(pv=pv, battery=battery, load_w=load_w, start_hour=start_hour, speed=speed, clock=clock)
        self.profile: Profile = load_profile(profile)
        self.export_limit_w: float | None = None
        self.writes: list[tuple[int, list[int]]] = []  # (address, words) as they arrived
        self.image: dict[int, dict[int, int]] = {3: {}, 4: {}}
        self._settings = {s.address + k for p in self.profile.points for s in (*p.set, *p.charge, *p.discharge, *p.stop)
                          for k in range(register_count(s.type))}
        for a in self._settings:
            self.image[3][a] = 0
        ident = self.profile.identify
        if ident.text_prefix is not None:
            raw = f"{ident.text_prefix}-100KTL-SIM".encode("ascii")[: 2 * ident.count].ljust(2 * ident.count, b"\0")
            words = [int.from_bytes(raw[k:k + 2], "big") for k in range(0, len(raw), 2)]
        else:
            words = [(ident.high_byte[-1] << 8) | 0x03] + [0] * (ident.count - 1)
        self.identity = words[0]
        for k, w in enumerate(words):
            self.image[ident.fc][ident.address + k] = w
        self.render(initial=True)

    def pv_w(self, t: float) -> float:
        """The PV output, capped by the output limit and, when set, so that feed-in stays within the export limit."""
        pv = super().pv_w(t)
        if self.export_limit_w is not None:
            pv = min(pv, max(0.0, self.load(t) - self.battery.power_w + self.export_limit_w))
        return pv

    def quantities(self) -> dict[str, float]:
        """What each profile metric shows now."""
        t = self.now()
        b, pv, grid = self.battery, self.pv_w(t), self.grid_w()
        dc = pv / DC_EFFICIENCY
        return {
            "pv_power": dc, "pv_voltage_1": 600.0, "pv_current_1": dc / 600.0 / 10, "ac_power": pv + b.power_w,
            "pv_voltage_l1": 230.0, "pv_frequency": 50.0, "pv_temperature": 35.0, "pv_energy": self.pv_wh / 1000.0,
            "pv_state": HUAWEI_STATE.get(self.state(), 0x0200), "rated_power": self.pv.peak_w,
            "power": grid, "energy_import": self.import_wh / 1000.0, "energy_export": self.export_wh / 1000.0,
            "load_power": self.load(t), "device_type": self.identity,
            "battery_capacity": b.capacity_wh / 1000.0, "battery_soc": b.soc * 100, "battery_soh": 98.0,
            "battery_power": b.power_w, "battery_max_charge_w": b.max_charge_w,
            "battery_max_discharge_w": b.max_discharge_w, "battery_soc_max": b.soc_max * 100,
            "battery_soc_min": b.soc_min * 100, "power_limit": 100.0, "export_limit_w": 0.0, "ems_mode": 0.0,
        }

    def render(self, *, initial: bool = False, fc: int | None = None, lo: int = 0, hi: int = 0x10000) -> None:
        """Encode the registers (of ``fc`` within [lo, hi), or all) from the plant at this moment."""
        self.advance()
        q = self.quantities()
        for r in self.profile.registers:
            if (r.address in self._settings and not initial) or (fc is not None and (
                    r.fc != fc or r.address + r.count <= lo or r.address >= hi)):
                continue  # a setting shows what was written; a register not asked for waits
            words = r.raw_for(q.get(r.name, 0.0))
            for k, w in enumerate(words):
                self.image[r.fc][r.address + k] = w

    # --- writes: read back through the points ---------------------------------------------------
    def _matches(self, steps: tuple[Any, ...]) -> bool:
        return all(self.image[3].get(s.address) == s.words(0.0)[0] for s in steps if s.value is not None)

    def _value(self, steps: tuple[Any, ...]) -> float:
        for s in steps:
            if s.value is None:
                n = register_count(s.type)
                return s.reads([self.image[3].get(s.address + k, 0) for k in range(n)])
        return 0.0

    def _apply(self, p: PointSpec) -> None:
        if p.kind is PointKind.BATTERY:
            self.advance()
            if self._matches(p.discharge):
                self.battery.setpoint_w = self._value(p.discharge)
            elif self._matches(p.charge):
                self.battery.setpoint_w = -self._value(p.charge)
            elif self._matches(p.stop):
                self.battery.setpoint_w = 0.0
        elif p.name == "power_limit":
            self.advance()
            self.limit_pct = max(0.0, min(100.0, self._value(p.set)))
            self.limit_on = self.limit_pct < 100.0
        elif p.name == "export_limit_w" and self._matches(p.set):
            self.advance()
            self.export_limit_w = self._value(p.set)

    def write(self, address: int, words: list[int]) -> None:
        self.writes.append((address, list(words)))
        for k, w in enumerate(words):
            self.image[3][address + k] = w
        hit = set(range(address, address + len(words)))
        for p in self.profile.points:
            steps = (*p.set, *p.charge, *p.discharge, *p.stop)
            if any(s.address in hit for s in steps):
                self._apply(p)

    # --- the Modbus device ----------------------------------------------------------------------
    def device(self, unit: int) -> SimDevice:
        def table(fc: int) -> list[SimData]:
            spans: list[list[int]] = []
            for a in sorted(self.image[fc]):
                if spans and a - spans[-1][1] <= 16:
                    spans[-1][1] = a + 1
                else:
                    spans.append([a, a + 1])
            spans = spans or [[0xFFFE, 0xFFFF]]
            return [SimData(a, count=b - a, values=0, datatype=DataType.UINT16) for a, b in spans]

        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(id=unit, simdata=(bits, bits, table(3), table(4)), action=self._action)

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
        if values is not None:
            self.write(address, [int(v) for v in values])
            return None
        table_fc = 4 if fc == 4 else 3
        self.render(fc=table_fc, lo=address, hi=address + count)
        table = self.image[table_fc]
        for k in range(count):
            i = address - start + k
            if 0 <= i < len(regs):
                regs[i] = table.get(address + k, 0)
        return None


class InverterSimHandle:
    def __init__(self, server: Any, sim: InverterSim, address: str):
        self.server = server
        self.sim = sim
        self.address = address

    async def stop(self) -> None:
        await self.server.shutdown()
        await asyncio.sleep(0)


async def start(*, profile: str = "huawei_sun2000", tcp: str | None = "127.0.0.1:5504", rtu_socket: str | None = None,
                unit: int | None = None, sim: InverterSim | None = None, **kw: Any) -> InverterSimHandle:
    """Serve one inverter (``sim`` or one built from ``profile`` and ``kw``) on Modbus TCP or RTU-on-socket."""
    s = sim or InverterSim(profile, **kw)
    server, where = await serve([s.device(unit or s.profile.profile.default_unit)], tcp=tcp, rtu_socket=rtu_socket)
    return InverterSimHandle(server, s, where)


def _command(profile: str, title: str) -> Any:
    @click.command(name=profile.replace("_", "-"), help=f"Simulate a {title}: PV on a clear-sky curve with clouds, "
                                                          "a battery and the grid meter, on the vendor's register map.")
    @click.option("--tcp", metavar="HOST:PORT", default="127.0.0.1:5504", show_default=True)
    @click.option("--unit", type=click.IntRange(1, 247), default=1, show_default=True)
    @plant_options
    def command(tcp: str, unit: int, lat: float, day: int, hour: float, cloudiness: float, speed: float) -> None:
        host, port = parse_hostport(tcp, "--tcp")

        async def main() -> None:
            pv = PvArray(lat_deg=lat, day_of_year=day, cloudiness=cloudiness)
            h = await start(profile=profile, tcp=tcp, unit=unit, pv=pv, start_hour=hour, speed=speed)
            points = h.sim.profile.points
            fit = min(p.largest() for p in points)
            device = {"type": "pv_inverter", "profile": profile, "unit": unit, "writable": [p.name for p in points],
                      "battery_max_w": int(min(h.sim.battery.max_charge_w, fit)),
                      "export_max_w": int(min(h.sim.pv.peak_w, fit))}
            click.echo(f"{title} unit {unit} serving on {tcp}; Ctrl-C to stop")
            click.echo(banner(snippet_for_device(*modbus_line(tcp=(host, port)), f"{profile}-{unit}", device)))
            await watch(h.sim, h.stop)

        run_until_interrupted(main)

    return command


def _spec(profile: str, title: str) -> SimulatorSpec:
    async def start_profile(**kw: Any) -> InverterSimHandle:
        return await start(profile=profile, **kw)

    return SimulatorSpec(name=profile.replace("_", "-"), summary=f"{title} (vendor map; PV with clouds, battery, grid meter)",
                         command=_command(profile, title), start=start_profile)


HUAWEI_SUN2000 = _spec("huawei_sun2000", "Huawei SUN2000 inverter")
SUNGROW_SH = _spec("sungrow_sh", "Sungrow SH hybrid inverter")
