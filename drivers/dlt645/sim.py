"""DL/T 645 meters on a pty (RS-485) or a TCP port (a DTU): ``edge-agent simulate dlt645``.

Several meters can share the line; each answers reads (11H/01H) to its own address, the read-address
request (13H to AA…AA) is answered by every meter at once (two or more collide into garbage, as on a
real bus) and broadcast time sync (08H to 99…99) sets every meter's clock, unanswered. Faults, queued
in ``faults`` or drawn at ``fault_rate``: garbage before the frame, a truncated frame, a bad
checksum, an error reply (D1H), silence.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import click

from agent.contract import ProtocolError, SimulatorSpec
from agent.simkit.meter_line import Fault, MeterLineSim, check_addresses, serve_line, tcp_option
from agent.simkit.serial_pty import sim_options

from . import codec
from .blocks import BLOCK, block_of
from .codec import Control, Edition
from .profiles import ITEMS

__all__ = ["DEFAULTS", "Dlt645Sim", "Fault", "Meter", "SIMULATOR", "start"]

DEFAULTS = {"energy_import": 12000.01, "energy_export": 321.5, "voltage_l1": 229.8, "voltage_l2": 230.4,
            "voltage_l3": 231.1, "current_l1": 5.123, "current_l2": 4.5, "current_l3": -0.25, "power": 3.4567,
            "power_l1": 1.1772, "power_l2": 1.0368, "power_l3": 1.2427, "reactive_power": 0.4321,
            "apparent_power": 3.5, "power_factor": 0.987, "frequency": 50.01, "demand": 3.2,
            "max_demand_import": 7.8, **{f"energy_import_t{i}": 3000.0 + i for i in range(1, 5)},
            **{f"energy_export_t{i}": 80.0 + i for i in range(1, 5)}}


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


class Dlt645Sim(MeterLineSim):
    scanner = staticmethod(codec.scan)

    def __init__(self, *, meters: list[Meter] | None = None, edition: Edition = Edition.V2007, **kw):
        super().__init__(**kw)
        self.meters = meters or [Meter("123456781012")]
        self.edition = edition
        self.reads = 0

    def reply(self, frame: bytes, *, error_control: int | None = None) -> None:
        def error() -> bytes:
            assert error_control is not None
            return codec.fr.encode(codec.LAYOUT, codec.decode(frame).address, error_control, b"\x01", wake=self.wake)
        self.send(frame, error=error if error_control is not None else None)

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
            self.answer_together(replies)
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
    check_addresses(addresses, codec.parse_address)
    sim = Dlt645Sim(meters=[Meter(a) for a in addresses], edition=Edition(edition), tcp=tcp_option(tcp), link=link,
                    port=port, fault_rate=fault_rate, seed=seed)
    serve_line(sim, f"DL/T 645-{edition} meter(s) {', '.join(addresses)}",
               (f'[[devices]]\nname = "meter{i + 1}"\ntype = "dlt645"\nline = "meters"\naddress = "{a}"\n'
                f'edition = "{edition}"\n' for i, a in enumerate(addresses)))


SIMULATOR = SimulatorSpec(name="dlt645", summary="DL/T 645 meters over a pty or TCP (several addresses, faults).",
                          command=command, start=start)
