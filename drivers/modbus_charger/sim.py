"""Charger simulators on a real pymodbus server: an IEC 61851 state machine behind a register profile.

A car plugs in, charges at min(offered current, car maximum), finishes, and is unplugged. Writes to
the current and enable registers drive the model; a profile heartbeat that lapses makes the charger
fall back to its fail-safe current. ``start_station`` serves a grid meter and several chargers with
cars arriving at random, for the demo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.contract import SimulatorSpec
from agent.simkit.net import parse_hostport, run_until_interrupted, serve_in_background
from agent.simkit.snippets import Draft, banner, modbus_line
from drivers.charger_common import Arrivals, Car, EvseModel

from .profile import (
    HeartbeatAction,
    Profile,
    decode_current,
    encode_state,
    encode_value,
    load_profile,
    profile_names,
)


class ChargerSim:
    """One connector's registers, rendered from an :class:`EvseModel` on every request."""

    def __init__(self, profile: Profile, *, connector: int = 1, speed: float = 1.0, failsafe_a: float = 6.0,
                 clock: Callable[[], float] = time.monotonic, total_wh: float = 1_234_000.0):
        self.profile = profile
        self.base = profile.offset(connector)
        self.speed = speed
        self._clock = clock
        self._t0 = clock()
        hb = profile.heartbeat
        timeout = hb.value if hb is not None and hb.action is HeartbeatAction.WRITE else (
            hb.interval * 2 if hb is not None else None)
        self.evse = EvseModel(failsafe_a=failsafe_a, heartbeat_timeout_s=timeout, total_wh=total_wh, now=0.0)
        self.writes: list[tuple[int, list[int]]] = []
        addrs = [profile.state.address, *(v.address + v.count for v in profile.values), profile.current.address + 2]
        if profile.state.cable_address is not None:
            addrs.append(profile.state.cable_address + 2)
        for extra in (profile.enable, profile.heartbeat):
            if extra is not None and getattr(extra, "address", None) is not None:
                addrs.append(extra.address + 1)
        lo = min(a for a in [profile.state.address, *(v.address for v in profile.values)])
        self.start = self.base + lo
        self.count = self.base + max(addrs) + 2 - self.start

    def now(self) -> float:
        return (self._clock() - self._t0) * self.speed

    # --- test and demo controls ---------------------------------------------------------------
    def plug(self, car: Car) -> None:
        self.evse.plug(car, self.now())

    def unplug(self) -> None:
        self.evse.unplug(self.now())

    def device(self, unit: int) -> SimDevice:
        return SimDevice(id=unit, simdata=[SimData(self.start, count=self.count, values=0, datatype=DataType.UINT16)],
                         action=self._action)

    # --- register image ---------------------------------------------------------------------
    def _put(self, regs: list[int], start: int, address: int, words: list[int]) -> None:
        i = self.base + address - start
        if 0 <= i and i + len(words) <= len(regs):
            regs[i:i + len(words)] = words

    def render(self, regs: list[int], start: int) -> None:
        t = self.now()
        e = self.evse
        e.advance(t)
        p = self.profile
        words, cable = encode_state(p.state, e.state(t))
        self._put(regs, start, p.state.address, words)
        if cable is not None and p.state.cable_address is not None:
            self._put(regs, start, p.state.cable_address, cable)
        i = e.current_a(t)
        ph3 = e.phases() == 3
        facts = {"current_l1": i, "current_l2": i if ph3 else 0.0, "current_l3": i if ph3 else 0.0,
                 "voltage_l1": e.voltage, "voltage_l2": e.voltage, "voltage_l3": e.voltage,
                 "power": e.power_w(t), "session_energy": e.session_wh / 1000, "energy_total": e.total_wh / 1000,
                 "current_limit": e.limit_a if e.enabled else 0.0, "enabled": 1.0 if e.enabled else 0.0, "error": 0.0}
        for v in p.values:
            self._put(regs, start, v.address, encode_value(v, facts[v.name]))

    async def _action(self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
        t = self.now()
        p = self.profile
        hb = p.heartbeat
        if values is None:
            if hb is not None and hb.action is HeartbeatAction.READ and address == self.base + p.state.address:
                self.evse.heartbeat(t)
            self.render(regs, start)
            return None
        vals = [int(v) for v in values]
        off = address - self.base
        self.writes.append((off, vals))
        if off == p.current.address:
            self.evse.set_limit(decode_current(p.current, vals), t)
        elif p.enable is not None and off == p.enable.address:
            self.evse.set_enabled(vals[0] == p.enable.on, t)
        elif hb is not None and hb.address is not None and off == hb.address:
            self.evse.heartbeat(t)
            self.evse.heartbeat_timeout_s = float(vals[0]) if vals[0] > 0 else None
        return None


class ChargerSimHandle:
    def __init__(self, server: Any, sims: dict[int, ChargerSim], address: str):
        self.server = server
        self.sims = sims
        self.address = address
        self._tasks: list[asyncio.Task] = []

    def drive(self, arrivals: dict[int, Arrivals], interval: float = 1.0) -> None:
        async def loop() -> None:
            while True:
                for uid, arr in arrivals.items():
                    sim = self.sims[uid]
                    arr.step(sim.evse, sim.now())
                await asyncio.sleep(interval)

        self._tasks.append(asyncio.get_running_loop().create_task(loop()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.server.shutdown()


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def start(*, profile: str = "charx", tcp: str = "127.0.0.1:5502", units: dict[int, str] | None = None,
                speed: float = 1.0, failsafe_a: float = 6.0, arrivals: bool = False, seed: int = 1,
                clock: Callable[[], float] = time.monotonic) -> ChargerSimHandle:
    """Serve charger simulators on Modbus TCP. ``units`` maps unit id -> profile (default: one unit)."""
    plan = units or {load_profile(profile).profile.default_unit: profile}
    sims = {uid: ChargerSim(load_profile(p), speed=speed, failsafe_a=failsafe_a, clock=clock) for uid, p in plan.items()}
    server = ModbusTcpServer([s.device(uid) for uid, s in sims.items()], address=_hostport(tcp))
    await serve_in_background(server, tcp)
    handle = ChargerSimHandle(server, sims, tcp)
    if arrivals:
        handle.drive({uid: Arrivals(seed=seed + uid) for uid in sims})
    return handle


def config_snippet(profile: str, units: list[int], tcp: str) -> str:
    """The [lines.X] and one [[devices]] block per charger, ready to paste."""
    draft = Draft()
    line = draft.add_line(*modbus_line(tcp=_hostport(tcp)))
    for uid in units:
        draft.add_device(f"{profile}-{uid}", {"type": "modbus_charger", "profile": profile, "unit": uid, "line": line})
    return banner(draft.render())


@click.command(name="modbus-charger", help="Simulate Modbus EV chargers with cars arriving (IEC 61851 state machine).")
@click.option("--tcp", metavar="HOST:PORT", default="127.0.0.1:5502", show_default=True)
@click.option("--profile", type=click.Choice(profile_names()), default="charx", show_default=True)
@click.option("--count", type=click.IntRange(1, 16), default=1, show_default=True, help="Chargers (unit ids 1..N, or the profile's id for one).")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per real second.")
def command(tcp: str, profile: str, count: int, speed: float) -> None:
    parse_hostport(tcp, "--tcp")

    async def main() -> None:
        units = None if count == 1 else {i + 1: profile for i in range(count)}
        h = await start(profile=profile, tcp=tcp, units=units, speed=speed, arrivals=True)
        click.echo(f"{count} x {profile} serving on {tcp} (units {', '.join(map(str, h.sims))}); Ctrl-C to stop")
        click.echo(config_snippet(profile, list(h.sims), tcp))
        try:
            while True:
                await asyncio.sleep(10)
                click.echo("  ".join(f"{u}:{s.evse.state(s.now()).name} {s.evse.power_w(s.now()) / 1000:.1f}kW"
                                     for u, s in h.sims.items()))
        finally:
            await h.stop()

    run_until_interrupted(main)


SIMULATOR = SimulatorSpec(name="modbus-charger", summary="Modbus EV chargers (CHARX, KEBA P30, ABB Terra AC) with arriving cars",
                          command=command, start=start)
