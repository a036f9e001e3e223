"""CJ/T 188 meters on a pty (RS-485 / M-Bus converter) or a TCP port (a DTU): ``edge-agent simulate cjt188``.

Several meters can share the line; each answers read data (01H, DI 901F) to its own address and the
read-address request (03H to AA…AA, type AAH) is answered by every meter at once (two or more
collide into garbage, as on a real bus). Faults (``agent.simkit.meter_line``), queued in
``sim_faults`` or drawn at ``fault_rate``: garbage before the frame, a truncated frame, a bad
checksum, an error reply (C1H), silence.
"""

from __future__ import annotations

from datetime import datetime

import click

from agent.contract import ProtocolError, SimulatorSpec
from agent.simkit.meter_line import MeterLineSim, check_addresses, serve_line, tcp_option
from agent.simkit.serial_pty import sim_options

from . import codec
from .codec import Control
from .profiles import PROFILES

WATER = {"volume": 1234.56, "volume_settlement": 1200.5}
HEAT = {"heat_settlement": 8000.0, "heat": 8123.45, "power": 12.34, "flow_rate": 0.5123, "volume": 456.78,
        "supply_temperature": 55.5, "return_temperature": 40.25, "working_hours": 12345}
UNITS = {"volume": 0x2C, "volume_settlement": 0x2C, "heat": 0x05, "heat_settlement": 0x05, "power": 0x17,
         "flow_rate": 0x35}


class Meter:
    def __init__(self, address: str, profile: str = "water", values: dict[str, float] | None = None, *,
                 units: dict[str, int] | None = None, status: int = 0, di_order: str = "little"):
        self.address = address
        self.wire = codec.parse_address(address)
        self.profile = PROFILES[profile]
        self.meter_type = int(self.profile.meter_type)
        self.values = dict(values if values is not None else HEAT if self.profile.family == "heat" else WATER)
        self.units = {**UNITS, **(units or {})}
        self.status = status  # ST: D0-D1 valve, D2 battery low
        self.di_order = di_order  # "big": echoes DI as 90 1F, as some meters do
        self.reads = 0

    def reply(self, ser: int, wake: int) -> bytes:
        return codec.encode_read_reply(self.meter_type, self.wire, ser, self.values, self.units, datetime.now(),
                                       self.status, wake=wake, di_order=self.di_order)


class Cjt188Sim(MeterLineSim):
    scanner = staticmethod(codec.scan)

    def __init__(self, *, meters: list[Meter] | None = None, **kw):
        super().__init__(**kw)
        self.meters = meters or [Meter("12345678000001")]
        self.reads = 0

    def _refusal(self, meter: Meter, ser: int) -> bytes:
        return codec.fr.encode(codec.LAYOUT, meter.wire, Control.READ | codec.REPLY | codec.ERROR, bytes((ser, 0, 0)),
                               meter_type=meter.meter_type, wake=self.wake)

    def handle(self, request: bytes) -> None:
        try:
            f = codec.decode(request)
        except ProtocolError:
            return
        self._last_request = len(request) + 4
        ser = f.data[2] if len(f.data) > 2 else 0
        if f.control == Control.READ_ADDRESS and f.address == codec.WILDCARD and codec.di_matches(f.data, codec.DI_ADDRESS):
            replies = [codec.fr.encode(codec.LAYOUT, m.wire, Control.READ_ADDRESS | codec.REPLY, f.data[:3],
                                       meter_type=m.meter_type, wake=self.wake) for m in self.meters]
            self.answer_together(replies)
            return
        meter = next((m for m in self.meters if m.wire == f.address), None)
        if meter is None or f.control != Control.READ:
            return
        self.reads += 1
        meter.reads += 1
        if not codec.di_matches(f.data, codec.DI_READ) or f.meter_type not in (meter.meter_type, codec.ANY_TYPE):
            self.send(self._refusal(meter, ser))
            return
        self.send(meter.reply(ser, self.wake), error=lambda: self._refusal(meter, ser))


async def start(*, addresses: tuple[str, ...] = ("12345678000001",), profile: str = "water", tcp: str | None = None,
                link: str | None = None, fault_rate: float = 0.0, seed: int | None = None) -> Cjt188Sim:
    """Start on a new pty (or ``tcp="127.0.0.1:0"``); ``.path`` is the line's port, ``.stop()`` ends it."""
    sim = Cjt188Sim(meters=[Meter(a, profile) for a in addresses], tcp=tcp, link=link, fault_rate=fault_rate, seed=seed)
    await sim.start()
    return sim


@click.command("cjt188")
@sim_options
@click.option("--address", "addresses", multiple=True, default=("12345678000001",), show_default=True,
              help="A meter's 14-digit address; repeat for several meters on the line.")
@click.option("--profile", type=click.Choice(list(PROFILES)), default="water", show_default=True)
@click.option("--tcp", default=None, help="Listen on HOST:PORT instead of a pty (a DTU).")
def command(link, port, fault_rate, seed, addresses, profile, tcp) -> None:
    """Simulate CJ/T 188 water, heat or gas meters (RS-485/M-Bus over a pty, or a DTU over TCP)."""
    check_addresses(addresses, codec.parse_address)
    sim = Cjt188Sim(meters=[Meter(a, profile) for a in addresses], tcp=tcp_option(tcp), link=link, port=port,
                    fault_rate=fault_rate, seed=seed)
    serve_line(sim, f"CJ/T 188 {profile} meter(s) {', '.join(addresses)}",
               (f'[[devices]]\nname = "{profile}{i + 1}"\ntype = "cjt188"\nline = "meters"\naddress = "{a}"\n'
                f'profile = "{profile}"\n' for i, a in enumerate(addresses)))


SIMULATOR = SimulatorSpec(name="cjt188", summary="CJ/T 188 water, heat or gas meters over a pty or TCP (faults).",
                          command=command, start=start)
