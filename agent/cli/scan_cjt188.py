"""``edge-agent scan --protocol cjt188``: find the CJ/T 188 meter on a line (one meter on the line).

Per serial setting: the address read (03H to AA…AA, type AAH; valid with one meter on the line
only), then one read of 901F. The line block written is a ``serial`` line with the setting that
answered.
"""

from __future__ import annotations

import asyncio

import click

from agent.errors import DeviceTimeout, ProtocolError

from ..simkit.snippets import Draft


async def _scan_one(port: str, baud: int, parity: str, timeout: float, draft: Draft) -> bool:
    from agent.bus.serial_port import SerialBus, SerialLineConfig
    from drivers.cjt188.discover import probe, read_address

    line = {"type": "serial", "port": port, "baudrate": baud, "parity": parity}
    click.echo(f"== {port} {baud} 8{parity}1")
    bus = SerialBus("scan", SerialLineConfig(**line))
    try:
        try:
            meter_type, address = await read_address(bus, timeout=timeout)
        except DeviceTimeout:
            click.echo("  address read (03H to AA…AA): no answer")
            return False
        except ProtocolError as e:
            click.echo(f"  address read (03H to AA…AA): garbled ({e}): several meters answering at once? "
                       "The address read works with one meter on the line only")
            return False
        click.echo(f"  address read: meter type {meter_type:02X}H, address {address}")
        found = await probe(bus, meter_type, address, timeout=timeout)
    finally:
        await bus.close()
    if found is None:
        click.echo(f"  meter {address}: no answer to read data (901F)")
        return False
    click.echo(f"  meter {address}: {found.profile or 'no profile'}, {found.evidence}")
    if found.profile is not None:
        name = draft.add_line("meters", line)
        draft.add_device(f"{found.profile}-{address}", {"type": "cjt188", "address": address, "profile": found.profile,
                                                         "line": name})
    return True


def scan_meter(port: str, bauds: list[int], parities: list[str], timeout: float) -> Draft:
    draft = Draft()
    for b in bauds:
        for p in parities:
            asyncio.run(_scan_one(port, b, p, timeout, draft))
    return draft
