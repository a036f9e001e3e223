"""DL/T 645 meters on a pty (RS-485) or a TCP port (a DTU): ``edge-agent simulate dlt645``.

Several meters can share the line; each answers reads (11H/01H) to its own address, the read-address
request (13H to AA…AA) is answered by every meter at once (two or more collide into garbage, as on a
real bus) and broadcast time sync (08H to 99…99) sets every meter's clock, unanswered. Faults, queued
in ``faults`` or drawn at ``fault_rate``: garbage before the frame, a truncated frame, a bad
checksum, an error reply (D1H), silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from datetime import datetime, timedelta

import click

from agent.contract import ProtocolError, SimulatorSpec
from agent.simkit.net import parse_hostport, run_until_interrupted
from agent.simkit.serial_pty import SerialDeviceSim, sim_options

from . import codec
from .blocks import BLOCK, block_of
from .codec import Control, Edition
from .profiles import ITEMS

DEFAULTS = {"energy_import": 12000.01, "energy_export": 321.5, "voltage_l1": 229.8, "voltage_l2": 230.4,
            "voltage_l3": 231.1, "current_l1": 5.123, "current_l2": 4.5, "current_l3": -0.25, "power": 3.4567,
            "power_l1": 1.1772, "power_l2": 1.0368, "power_l3": 1.2427, "reactive_power": 0.4321,
            "apparent_power": 3.5, "power_factor": 0.987, "frequency": 50.01, "demand": 3.2,
            "max_demand_import": 7.8, **{f"energy_import_t{i}": 3000.0 + i for i in range(1, 5)},
            **{f"energy_export_t{i}": 80.0 + i for i in range(1, 5)}}


class Fault(enum.StrEnum):
    GARBAGE = "garbage"  # random bytes before the frame
    TRUNCATE = "truncate"  # the first part of the frame only
    BAD_CHECKSUM = "bad_checksum"  # a data byte changed, the checksum not
    ERROR_REPLY = "error_reply"  # D1H "other error" instead of the data
    SILENCE = "silence"  # no answer


class Meter:
    def __init__(self, address: str, values: dict[str, float] | None = None, *, blocks: bool = True):
        self.address = address
        self.blocks = blocks  # answers DI1 = FF block reads
        self.wire = codec.parse_address(address)
        self.values = dict(DEFAULTS if values is None else values)
        self.clock_offset = timedelta(0)  # meter time - gateway-local time
        self.time_syncs = 0

    def now(self) -> datetime:
        return datetime.now() + self.clock_offset

    def value_bytes(self, di: int, edition: Edition) -> bytes | None:
        if edition is Edition.V2007 and di in (0x04000101, 0x04000102):
            t = self.now()
            fields = (t.isoweekday() % 7, t.day, t.month, t.year % 100) if di == 0x04000101 else (t.second, t.minute, t.hour)
            return bytes(int(f"{v:02d}", 16) for v in fields)
        if edition is Edition.V2007 and di >> 8 & 0xFF == BLOCK:
            return self._block(di) if self.blocks else None
        for item in ITEMS:
            if item.di(edition) == di and item.metric in self.values:
                fmt = item.fmt(edition)
                assert fmt is not None
                return fmt.encode(self.values[item.metric])
        return None


    def _block(self, di: int) -> bytes | None:
        first = block_of(di & 0xFFFF00FF | 0x0100)
        if first is None:
            return None
        out = b""
        for di1 in range(first[1], 0x40):
            value = self.value_bytes(di & 0xFFFF00FF | di1 << 8, Edition.V2007)
            if value is None:
                break
            out += value
        return out or None


class Dlt645Sim(SerialDeviceSim):
    scanner = staticmethod(codec.scan)

    def __init__(self, *, meters: list[Meter] | None = None, edition: Edition = Edition.V2007,
                 tcp: str | None = None, wake: int = 2, pace_baud: int | None = None, **kw):
        kw.setdefault("baudrate", 2400)
        super().__init__(**kw)
        self.meters = meters or [Meter("123456781012")]
        self.edition = edition
        self.tcp = tcp
        self.wake = wake  # FE bytes in front of each reply (meters send 0-4)
        self.pace_baud = pace_baud  # answer only after the request and reply would have crossed an 8E1 line
        self._last_request = 0
        self.sim_faults: list[Fault] = []
        self.reads = 0
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None

    # -- TCP (a DTU): the same byte stream over a socket ---------------------------------------
    @property
    def path(self) -> str:
        return f"socket://{self.tcp}" if self.tcp else super().path

    async def start(self) -> Dlt645Sim:
        if self.tcp is None:
            await super().start()
            return self
        host, port = self.tcp.rsplit(":", 1)
        self._server = await asyncio.start_server(self._client, host, int(port))
        if int(port) == 0:
            self.tcp = f"{host}:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        buf = bytearray()
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while buf:
                    r = self.scanner(buf)
                    if r.consumed == 0:
                        break
                    del buf[:r.consumed]
                    if r.frame is not None:
                        self.requests += 1
                        self.handle(r.frame)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            if self._writer is not None:
                self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            return
        await super().stop()

    def write_raw(self, data: bytes) -> None:
        if self.tcp is not None:
            if self._writer is not None and not self._writer.is_closing():
                self._writer.write(data)
            return
        super().write_raw(data)

    # -- the meters ---------------------------------------------------------------------------
    def _fault(self) -> Fault | None:
        if self.sim_faults:
            return self.sim_faults.pop(0)
        if self.fault_rate and self.rng.random() < self.fault_rate:
            return self.rng.choice(list(Fault))
        return None

    def reply(self, frame: bytes, *, error_control: int | None = None) -> None:
        fault = self._fault()
        if fault is Fault.SILENCE:
            return
        if fault is Fault.ERROR_REPLY and error_control is not None:
            f = codec.decode(frame)
            frame = codec.fr.encode(codec.LAYOUT, f.address, error_control, b"\x01", wake=self.wake)
        data = bytearray(frame)
        if fault is Fault.GARBAGE:
            data[:0] = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
        elif fault is Fault.TRUNCATE:
            data = data[: self.rng.randrange(self.wake + 1, len(frame) - 1)]
        elif fault is Fault.BAD_CHECKSUM:
            data[-3] ^= 0x01  # the last data byte
        if self.pace_baud:
            wire = (self._last_request + len(data)) * 11 / self.pace_baud
            asyncio.get_running_loop().call_later(wire, self.write_raw, bytes(data))
        else:
            self.write_raw(bytes(data))
        self.frames_sent += 1

    def handle(self, request: bytes) -> None:
        try:
            f = codec.decode(request)
        except ProtocolError:
            return
        self._last_request = len(request) + 4  # the master's FE wake-up bytes were skipped by the scanner
        if f.control == Control.BROADCAST_TIME and f.address == codec.BROADCAST and len(f.data) == 6:
            s, mi, h, d, mo, y = (int(f"{b:02X}") for b in f.data)
            with contextlib.suppress(ValueError):
                target = datetime(2000 + y, mo, d, h, mi, s)
                for m in self.meters:
                    m.clock_offset, m.time_syncs = target - datetime.now(), m.time_syncs + 1
            return
        if f.control == Control.READ_ADDRESS and f.address == codec.WILDCARD:
            replies = [codec.fr.encode(codec.LAYOUT, m.wire, Control.READ_ADDRESS | codec.REPLY, m.wire, wake=self.wake)
                       for m in self.meters]
            if len(replies) == 1:
                self.reply(replies[0])
            else:  # every meter talks at once: the line carries the wired-OR of their bits
                self.write_raw(bytes(min(bs) for bs in zip(*replies, strict=False)))
            return
        read = codec.read_control(self.edition)
        meter = next((m for m in self.meters if m.wire == f.address), None)
        if meter is None or f.control != read:
            return
        di_len = 4 if self.edition is Edition.V2007 else 2
        di = int.from_bytes(f.data[:di_len], "little")
        self.reads += 1
        value = meter.value_bytes(di, self.edition)
        error = read | codec.REPLY | codec.ERROR
        if value is None:
            self.reply(codec.fr.encode(codec.LAYOUT, meter.wire, error, b"\x02", wake=self.wake))
            return
        self.reply(codec.fr.encode(codec.LAYOUT, meter.wire, read | codec.REPLY, f.data[:di_len] + value, wake=self.wake),
                   error_control=error)


async def start(*, addresses: tuple[str, ...] = ("123456781012",), edition: str = "2007", tcp: str | None = None,
                link: str | None = None, fault_rate: float = 0.0, seed: int | None = None) -> Dlt645Sim:
    """Start on a new pty (or ``tcp="127.0.0.1:0"``); ``.path`` is the line's port, ``.stop()`` ends it."""
    return await Dlt645Sim(meters=[Meter(a) for a in addresses], edition=Edition(edition), tcp=tcp, link=link,
                           fault_rate=fault_rate, seed=seed).start()


@click.command("dlt645")
@sim_options
@click.option("--address", "addresses", multiple=True, default=("123456781012",), show_default=True,
              help="A meter's 12-digit address; repeat for several meters on the line.")
@click.option("--edition", type=click.Choice(["2007", "1997"]), default="2007", show_default=True)
@click.option("--tcp", default=None, help="Listen on HOST:PORT instead of a pty (a 4G DTU).")
def command(link, port, fault_rate, seed, addresses, edition, tcp) -> None:
    """Simulate DL/T 645 meters (RS-485 over a pty, or a DTU over TCP)."""
    for a in addresses:
        try:
            codec.parse_address(a)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--address") from None
    if tcp is not None:
        host, p = parse_hostport(tcp, "--tcp")
        tcp = f"{host}:{p}"
    sim = Dlt645Sim(meters=[Meter(a) for a in addresses], edition=Edition(edition), tcp=tcp, link=link, port=port,
                    fault_rate=fault_rate, seed=seed)

    async def main() -> None:
        await sim.start()
        where = sim.path
        click.echo(f"DL/T 645-{edition} meter(s) {', '.join(addresses)} on {where}  (Ctrl-C stops)")
        parity = '"N"  # a pty refuses even parity; real meters: "E"' if sim.tcp is None and sim.port is None else '"E"'
        click.echo(f'[lines.meters]\ntype = "serial"\nport = "{where}"\nbaudrate = 2400\nparity = {parity}\n')
        for i, a in enumerate(addresses):
            click.echo(f'[[devices]]\nname = "meter{i + 1}"\ntype = "dlt645"\nline = "meters"\naddress = "{a}"\n'
                       f'edition = "{edition}"\n')
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            await sim.stop()

    run_until_interrupted(main)


SIMULATOR = SimulatorSpec(name="dlt645", summary="DL/T 645 meters over a pty or TCP (several addresses, faults).",
                          command=command, start=start)
