"""``edge-agent scan --protocol dlt645`` and ``init --scan-dlt645``: find DL/T 645 meters on a line.

Per serial setting: the address read (valid with one meter on the line only), then a probe of every
address found or given (``--address``), 2007 then 1997. The line block written is a ``serial`` line
with the setting that answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import click

from agent.errors import DeviceTimeout, ProtocolError

from ..simkit.snippets import Draft


@dataclass
class MeterScan:
    label: str
    line: dict
    found: list = field(default_factory=list)  # drivers.dlt645.discover.Found
    notes: list[str] = field(default_factory=list)


async def _scan_one(port: str, baud: int, parity: str, addresses: list[str], timeout: float) -> MeterScan:
    from agent.bus.serial_port import SerialBus, SerialLineConfig
    from drivers.dlt645.discover import probe, read_address

    line = {"type": "serial", "port": port, "baudrate": baud, "parity": parity}
    scan = MeterScan(f"{port} {baud} 8{parity}1", line)
    bus = SerialBus("scan", SerialLineConfig(**line))
    try:
        wanted = list(addresses)
        try:
            addr = await read_address(bus, timeout=timeout)
            scan.notes.append(f"address read (13H to AA…AA): {addr}")
            if addr not in wanted:
                wanted.append(addr)
        except DeviceTimeout:
            scan.notes.append("address read (13H to AA…AA): no answer")
        except ProtocolError as e:
            scan.notes.append(f"address read (13H to AA…AA): garbled ({e}): several meters answering at once? "
                              "The address read works with one meter on the line only; give the nameplate "
                              "addresses with --address")
        for a in wanted:
            f = await probe(bus, a, timeout=timeout)
            if f is None:
                scan.notes.append(f"meter {a}: no answer")
            else:
                scan.found.append(f)
    finally:
        await bus.close()
    return scan


def scan_meters(port: str, bauds: list[int], parities: list[str], addresses: list[str], timeout: float) -> list[MeterScan]:
    return [asyncio.run(_scan_one(port, b, p, addresses, timeout)) for b in bauds for p in parities]


def add_meters_to_draft(draft: Draft, scan: MeterScan) -> int:
    if not scan.found:
        return 0
    line = draft.add_line("meters", scan.line)
    for f in scan.found:
        draft.add_device(f"meter-{f.address}", {"type": "dlt645", "address": f.address, "edition": f.edition.value,
                                                "line": line})
    return len(scan.found)


def report(scans: list[MeterScan]) -> Draft:
    draft = Draft()
    for s in scans:
        click.echo(f"== {s.label}")
        for n in s.notes:
            click.echo(f"  {n}")
        for f in s.found:
            click.echo(f"  meter {f.address}: DL/T 645-{f.edition.value}, {f.evidence}")
        add_meters_to_draft(draft, s)
    return draft


def parse_addresses(values: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        for a in v.split(","):
            a = a.strip()
            if len(a) != 12 or not a.isdigit():
                raise click.BadParameter(f"{a!r} is not a 12-digit DL/T 645 address", param_hint="--address")
            out.append(a)
    return out
