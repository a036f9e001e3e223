"""Meter simulators on a real pymodbus 3.16 server (SimData/SimDevice), over TCP or RTU.

``edge-agent simulate sdm630 --tcp 127.0.0.1:5020`` (or ``--rtu-socket HOST:PORT`` for RTU
framing over a TCP socket, which ``port = "socket://HOST:PORT"`` on a modbus_rtu line talks
to). Values vary slowly and are pushed live with ``server.async_setValues``. ``handle.values``
holds exactly what a driver decodes (float32 rounding and scaling applied). Faults can be
injected per unit: dead (no reply), exception code, garbage bytes, short frame.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click
from pymodbus import FramerType
from pymodbus.framer import FramerRTU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.contract import SimulatorSpec
from agent.simkit.modbus_tcp import Pipelining, tcp_server
from agent.simkit.net import parse_hostport, run_until_interrupted, serve_in_background
from agent.simkit.snippets import banner, modbus_line, snippet_for_device

from .codec import RegisterSpec, load_profile, profile_names
from .simmodel import MeterModel


class Fault(enum.StrEnum):
    NONE = "none"
    DEAD = "dead"  # never answers
    EXCEPTION = "exception"  # answers with a Modbus exception (code in fault_code)
    GARBAGE = "garbage"  # answers with random bytes (bad CRC)
    SHORT = "short"  # answers with a truncated frame


@dataclass
class _Unit:
    profile: str
    registers: tuple[RegisterSpec, ...]  # with every base choice expanded
    model: MeterModel
    blocks: dict[int, list[tuple[int, list[int]]]] = field(default_factory=dict)  # fc -> [(start, words)]
    values: dict[str, float] = field(default_factory=dict)
    pinned: dict[str, float] = field(default_factory=dict)
    fault: Fault = Fault.NONE
    fault_code: int = 4


def _expand(profile: str) -> tuple[RegisterSpec, ...]:
    prof = load_profile(profile)
    out = []
    for r in prof.registers:
        if r.base is None:
            out.append(r)
            continue
        for b in prof.profile.bases[r.base].choices:  # serve every disputed layout with the same value
            out.append(r.model_copy(update={"address": b + r.address, "base": None}))
    return tuple(out)


def _blocks(regs: tuple[RegisterSpec, ...], merge_gap: int) -> dict[int, list[tuple[int, list[int]]]]:
    """Zero-filled register images covering the registers; holes up to ``merge_gap`` are served."""
    out: dict[int, list[tuple[int, list[int]]]] = {}
    for fc in (3, 4):
        spans = sorted((r.address, r.address + r.count) for r in regs if r.fc == fc)
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a - merged[-1][1] <= merge_gap:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[fc] = [(a, [0] * (b - a)) for a, b in merged]
    return out


class MeterSimHandle:
    """A running simulator. ``values``: the first unit's decoded values; ``values_of(unit)`` any."""

    def __init__(self, server: Any, units: dict[int, _Unit], address: str, *, rtu: bool):
        self.server = server
        self.units = units
        self.address = address
        self.rtu = rtu
        self._task: asyncio.Task | None = None
        self._rng = random.Random(1)

    @property
    def values(self) -> dict[str, float]:
        return dict(self.units[next(iter(self.units))].values)

    def values_of(self, unit: int) -> dict[str, float]:
        return dict(self.units[unit].values)

    def set_fault(self, unit: int, fault: Fault | str, *, code: int = 4) -> None:
        self.units[unit].fault = Fault(fault)
        self.units[unit].fault_code = code

    async def pin(self, unit: int, name: str, value: float) -> None:
        """Hold a metric at a fixed value (e.g. a status register with error bits set)."""
        self.units[unit].pinned[name] = value
        await self.step(0)

    async def load_step(self, unit: int, factor: float) -> None:
        """Switch load on or off: the unit's power (and currents, energy rate) times ``factor`` from now."""
        self.units[unit].model.load *= factor
        await self.step(0)

    async def unpin(self, unit: int, name: str) -> None:
        self.units[unit].pinned.pop(name, None)
        await self.step(0)

    async def step(self, seconds: float) -> None:
        """Advance simulated time and push the new register images to the server."""
        for uid, u in self.units.items():
            u.model.advance(seconds)
            _render(u)
            for fc, blocks in u.blocks.items():
                for start, words in blocks:
                    await self.server.async_setValues(uid, fc, start, list(words))

    def run_live(self, interval: float) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.step(interval)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.server.shutdown()
        await asyncio.sleep(0)

    # server-side packet hook: rewrites replies of faulty units
    def trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or len(data) < 3:
            return data
        uid = data[0] if self.rtu else (data[6] if len(data) > 7 else -1)
        u = self.units.get(uid)
        if u is None or u.fault is Fault.NONE:
            return data
        if u.fault is Fault.DEAD:
            return b""
        if u.fault is Fault.SHORT:
            return data[: max(3, len(data) // 2)]
        if u.fault is Fault.GARBAGE:
            body = bytes(self._rng.randrange(256) for _ in range(len(data)))
            return (bytes([uid]) + body[1:]) if self.rtu else data[:7] + body[7:]
        fc = (data[1] if self.rtu else data[7]) | 0x80
        if self.rtu:
            frame = bytes([uid, fc, u.fault_code])
            return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")
        return data[:4] + (3).to_bytes(2, "big") + bytes([uid, fc, u.fault_code])


def _render(u: _Unit) -> None:
    """Compute every value, encode it into the block images, and record what a driver decodes."""
    for r in u.registers:
        value = u.pinned.get(r.name, u.model.value(r.name, r.unit))
        words = r.raw_for(value)
        u.values[r.name] = r.value(words)
        for start, image in u.blocks[r.fc]:
            if start <= r.address and r.address + r.count <= start + len(image):
                image[r.address - start: r.address - start + r.count] = words
                break


def _device(uid: int, u: _Unit) -> SimDevice:
    def table(fc: int) -> list[SimData]:
        blocks = u.blocks[fc] or [(0xFFFE, [0])]
        return [SimData(a, values=list(w), datatype=DataType.UINT16) for a, w in blocks]

    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(id=uid, simdata=(bits, bits, table(3), table(4)))


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


async def start(*, profile: str = "sdm630", tcp: str | None = None, rtu_socket: str | None = None,
                unit: int | None = None, units: Mapping[int, str] | None = None,
                update_interval: float | None = 1.0, seed: int = 0, start_hour: float = 12.0,
                pipelining: Pipelining | str = Pipelining.QUEUE) -> MeterSimHandle:
    """Start serving in the running loop. ``units`` maps unit id -> profile for a multi-meter line.
    ``pipelining`` (TCP): how several outstanding requests are treated (see agent.simkit.modbus_tcp)."""
    if (tcp is None) == (rtu_socket is None):
        raise ValueError("give exactly one of tcp='HOST:PORT' or rtu_socket='HOST:PORT'")
    plan = dict(units) if units else {unit or load_profile(profile).profile.default_unit: profile}
    table: dict[int, _Unit] = {}
    for i, (uid, prof) in enumerate(plan.items()):
        regs = _expand(prof)
        u = _Unit(prof, regs, MeterModel(seed=seed + i, start_hour=start_hour),
                  blocks=_blocks(regs, load_profile(prof).profile.max_gap))
        _render(u)
        table[uid] = u
    devices = [_device(uid, u) for uid, u in table.items()]
    handle = MeterSimHandle(None, table, tcp or f"socket://{rtu_socket}", rtu=tcp is None)
    if tcp is not None:
        server = tcp_server(devices, _hostport(tcp), trace_packet=handle.trace, pipelining=pipelining)
    else:
        server = ModbusSerialServer(devices, port=f"socket://{rtu_socket}", framer=FramerType.RTU,
                                    trace_packet=handle.trace)
    handle.server = server
    await serve_in_background(server, tcp or f"socket://{rtu_socket}")
    if update_interval:
        handle.run_live(update_interval)
    return handle


def config_snippet(profile: str, unit: int, *, tcp: str | None = None, rtu_socket: str | None = None) -> str:
    """The [lines.X] and [[devices]] blocks that read this simulator, ready to paste."""
    line = modbus_line(tcp=_hostport(tcp)) if tcp else modbus_line(port=f"socket://{rtu_socket}")
    device = {"type": "modbus_meter", "profile": profile, "unit": unit}
    return banner(snippet_for_device(*line, f"{profile}-{unit}", device))


def _command(default_profile: str) -> click.Command:
    @click.command(name=default_profile, help=f"Simulate a {load_profile(default_profile).profile.summary}.")
    @click.option("--tcp", metavar="HOST:PORT", help="Serve Modbus TCP.")
    @click.option("--rtu-socket", metavar="HOST:PORT", help="Serve Modbus RTU framing on a TCP socket (socket://HOST:PORT).")
    @click.option("--unit", type=click.IntRange(1, 247 if default_profile != "senseair_s8" else 255), default=None,
                  help="Unit id (default: the profile's).")
    @click.option("--profile", type=click.Choice(profile_names()), default=default_profile, show_default=True)
    @click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between value updates.")
    @click.option("--pipelining", type=click.Choice([p.value for p in Pipelining]), default="queue", show_default=True,
                  help="TCP: several requests outstanding are queued, only the first of a segment answered, "
                       "or the connection closed.")
    def command(tcp: str | None, rtu_socket: str | None, unit: int | None, profile: str, interval: float,
                pipelining: str) -> None:
        if (tcp is None) == (rtu_socket is None):
            raise click.UsageError("give exactly one of --tcp HOST:PORT or --rtu-socket HOST:PORT")
        parse_hostport(tcp or rtu_socket or "", "--tcp" if tcp else "--rtu-socket")

        async def main() -> None:
            h = await start(profile=profile, tcp=tcp, rtu_socket=rtu_socket, unit=unit, update_interval=interval,
                            pipelining=pipelining)
            uid = next(iter(h.units))
            click.echo(f"{profile} unit {uid} serving on {h.address}; Ctrl-C to stop")
            click.echo(config_snippet(profile, uid, tcp=tcp, rtu_socket=rtu_socket))
            try:
                while True:
                    await asyncio.sleep(10)
                    v = h.values
                    shown = ", ".join(f"{k}={v[k]:.2f}" for k in list(v)[:4])
                    click.echo(shown)
            finally:
                await h.stop()

        run_until_interrupted(main)

    return command


def _spec(name: str) -> SimulatorSpec:
    async def start_profile(**kw: Any) -> MeterSimHandle:
        return await start(**{"profile": name, **kw})

    return SimulatorSpec(name=name, summary=load_profile(name).profile.summary, command=_command(name),
                         start=start_profile)


SDM630 = _spec("sdm630")
SDM120 = _spec("sdm120")
DDSU666 = _spec("ddsu666")
DTSU666 = _spec("dtsu666")
SENSEAIR_S8 = _spec("senseair_s8")
SIMULATOR = SDM630
