"""``edge-agent scan``: find Modbus units on a line and guess their meter or charger profile.

Each unit id is asked once per serial setting. The report keeps apart silence (nothing there,
or wrong settings), garbled replies (something is there but baud/parity/wiring is off) and
Modbus exception replies (a device is there and refused the request).

Not every exception reply proves a device: 10 (gateway path unavailable) and 11 (gateway target
failed to respond) come from a gateway that found nothing at that unit id. Exception 4 (server
device failure) is no proof either: Modbus TCP servers, RS-485 gateways and pymodbus-based servers
answer 4 for a unit id they do not serve. A unit answering 4 counts only when a meter profile's
probes then read plausibly; the others are summed up as "no device".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import click

from agent.errors import BusUnavailable, DeviceException, DeviceTimeout, ProtocolError
from agent.simkit.net import parse_hostport

from ..simkit.snippets import Draft, banner, modbus_line
from .scan_sunspec import device_models, sunspec_models

# metric name -> plausible range; a profile matches when all its probe metrics read plausibly
PROBES = {"voltage": (80.0, 300.0), "voltage_l1": (80.0, 300.0), "frequency": (45.0, 65.0),
          "voltage_l1_l2": (300.0, 520.0), "co2": (0.0, 10000.0)}


@dataclass
class Finding:
    unit: int
    status: str  # "ok" | "exception" | "garbled" | "timeout" | "absent" (a gateway said no device)
    detail: str = ""
    profile: str | None = None
    probes: str = ""
    kind: str = "modbus_meter"  # the driver the profile belongs to (modbus_meter, modbus_charger or pv_inverter)
    sunspec: list[int] | None = None  # the models a config reads, when the unit speaks SunSpec


def default_units(*, tcp: bool) -> str:
    return "1-247,255" if tcp else "1-247"


def parse_units(text: str) -> list[int]:
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a unit id or range like 1-247") from None
        if not 1 <= a <= b <= 255:
            raise click.BadParameter(f"{part!r}: unit ids are 1..255")
        out.update(range(a, b + 1))
    return sorted(out)


async def guess_profile(bus, unit: int, timeout: float) -> tuple[str | None, str]:
    from drivers.modbus_meter.codec import load_profile, profile_names

    best: tuple[int, str | None, str] = (0, None, "")
    for name in profile_names():
        probes = [r for r in load_profile(name).resolve() if r.name in PROBES]
        seen = []
        for r in probes:
            try:
                v = r.value(await bus.read_registers(unit, fc=r.fc, address=r.address, count=r.count, timeout=timeout))
            except (DeviceException, ProtocolError, DeviceTimeout, ValueError):
                break
            lo, hi = PROBES[r.name]
            if not lo <= v <= hi:
                break
            seen.append(f"{r.name}={v:.1f}")
        else:
            if probes and len(probes) > best[0]:
                best = (len(probes), name, ", ".join(seen))
    return best[1], best[2]


GATEWAY_NO_DEVICE = (10, 11)  # gateway path unavailable, gateway target device failed to respond
SERVER_DEVICE_FAILURE = 4


async def identify(bus, f: Finding, timeout: float) -> None:
    """A SunSpec device (marker and model chain), else a vendor-map inverter that identifies itself,
    else a meter profile whose probes read plausibly, else a charger's."""
    from .scan_chargers import guess_charger
    from .scan_inverters import guess_inverter

    found = await sunspec_models(bus, f.unit, timeout)
    if found is not None:
        base, chain = found
        f.sunspec = device_models(chain)
        f.probes = f"SunSpec at {base}: models {', '.join(map(str, chain))}"
        return
    f.profile, f.probes = await guess_inverter(bus, f.unit, timeout)
    if f.profile is not None:
        f.kind = "pv_inverter"
        return
    f.profile, f.probes = await guess_profile(bus, f.unit, timeout)
    if f.profile is None:
        f.profile, f.probes = await guess_charger(bus, f.unit, timeout)
        f.kind = "modbus_charger" if f.profile else f.kind


async def scan_line(bus, units: list[int], *, timeout: float) -> list[Finding]:
    found = []
    for u in units:
        try:
            await bus.read_registers(u, fc=4, address=0, count=1, timeout=timeout)
            f = Finding(u, "ok")
        except DeviceException as e:
            if e.code in GATEWAY_NO_DEVICE:
                found.append(Finding(u, "absent", f"exception {e.code}"))
                continue
            f = Finding(u, "exception", f"exception {e.code}")
            if e.code == SERVER_DEVICE_FAILURE:
                await identify(bus, f, timeout)
                found.append(f if f.profile or f.sunspec else Finding(u, "absent", f"exception {e.code}"))
                continue
        except DeviceTimeout:
            found.append(Finding(u, "timeout"))
            continue
        except ProtocolError as e:
            found.append(Finding(u, "garbled", str(e)))
            continue
        await identify(bus, f, timeout)
        found.append(f)
    return found


def _bus(port: str | None, tcp: str | None, baud: int, parity: str, timeout: float):
    from agent.bus.modbus import ModbusBus
    from agent.bus.modbus_config import ModbusRtuLine, ModbusTcpLine

    if tcp:
        host, p = parse_hostport(tcp, "--tcp")
        return ModbusBus("scan", ModbusTcpLine(type="modbus_tcp", host=host, port=p,
                                               timeout=timeout, retries=0))
    return ModbusBus("scan", ModbusRtuLine(type="modbus_rtu", port=port, baudrate=baud, parity=parity,
                                           timeout=timeout, retries=0))


@dataclass
class LineScan:
    """What one serial setting (or one TCP address) answered, and the line config for it."""

    label: str
    line_name: str
    line: dict
    findings: list[Finding]


def scan_lines(port: str | None, tcp: str | None, ids: list[int], bauds: list[int], parities: list[str],
               timeout: float) -> list[LineScan]:
    """Scan every setting in turn. Raises BusUnavailable when the port or address cannot be opened."""
    settings = [(None, None)] if tcp else [(b, p) for b in bauds for p in parities]
    out = []
    for b, p in settings:
        label = tcp if tcp else f"{port} {b} 8{p}1"
        bus = _bus(port, tcp, b or 9600, p or "N", timeout)

        async def run(bus=bus):
            try:
                return await scan_line(bus, ids, timeout=timeout)
            finally:
                await bus.close()

        found = asyncio.run(run())
        name, line = modbus_line(port=port, tcp=parse_hostport(tcp, "--tcp") if tcp else None,
                                 baudrate=b or 9600, parity=p or "N")
        out.append(LineScan(label, name, line, found))
    return out


def add_to_draft(draft: Draft, scan: LineScan) -> int:
    """Add the line and a device per unit with a guessed profile; returns how many devices."""
    present = [f for f in scan.findings if f.status in ("ok", "exception")]
    if not present:
        return 0
    line = draft.add_line(scan.line_name, scan.line)
    for f in present:
        if f.sunspec:
            draft.add_device(f"sunspec-{f.unit}", {"type": "sunspec", "models": f.sunspec, "unit": f.unit, "line": line})
        elif f.profile:
            draft.add_device(f"{f.profile}-{f.unit}", {"type": f.kind, "profile": f.profile,
                                                       "unit": f.unit, "line": line})
        else:
            draft.comments.append(f"unit {f.unit} on line {line} answers but matched no known profile: "
                                  "add a [[devices]] with profile or [[devices.registers]]")
    return sum(1 for f in present if f.profile or f.sunspec)


def _present(scan: LineScan) -> list[Finding]:
    return [f for f in scan.findings if f.status in ("ok", "exception")]


def draft_scans(draft: Draft, scans: list[LineScan]) -> None:
    """The config for what answered. One serial port takes one setting (``check`` refuses two lines
    on one port): the setting most units answered at becomes the line; units found only at another
    setting are listed with what to do, units found at several (a converter that ignores the serial
    settings) are drafted once."""
    tcp = [s for s in scans if s.line["type"] != "modbus_rtu"]
    serial = [s for s in scans if s.line["type"] == "modbus_rtu" and _present(s)]
    for scan in tcp:
        add_to_draft(draft, scan)
    if not serial:
        return
    best = max(serial, key=lambda s: len(_present(s)))  # the first of equals: the order asked
    add_to_draft(draft, best)
    drafted = {f.unit for f in _present(best)}
    setting = f"{best.line['baudrate']} 8{best.line['parity']}1"
    for scan in serial:
        if scan is best:
            continue
        for f in _present(scan):
            if f.unit in drafted:
                continue
            what = f"profile {f.profile}" if f.profile else "no known profile"
            draft.comments.append(
                f"unit {f.unit} ({what}) answers only at {scan.label}: one port takes one setting, so it is not "
                f"in the blocks above; set it to {setting} (or wire it to its own adapter) and scan again")
            drafted.add(f.unit)


def parse_settings(baud: str, parity: str) -> tuple[list[int], list[str]]:
    try:
        bauds = [int(b) for b in baud.split(",")]
    except ValueError:
        raise click.BadParameter(f"{baud!r} is not a list of baud rates", param_hint="--baud") from None
    parities = [p.strip().upper() for p in parity.split(",")]
    if any(p not in ("N", "E", "O") for p in parities):
        raise click.BadParameter(f"{parity!r}: use N, E or O", param_hint="--parity")
    return bauds, parities


@click.command(name="scan")
@click.option("--port", help="Serial port or pyserial URL (/dev/ttyUSB0, socket://host:port).")
@click.option("--tcp", metavar="HOST:PORT", help="Modbus TCP device or gateway.")
@click.option("--units", default=None, help="Unit ids: 1-247, or 1,2,10-20, or 254 (Senseair). Default: 1-247, "
              "and 255 with --tcp (chargers such as the CHARX answer there).")
@click.option("--baud", default=None, help="Comma-separated baud rates to try (serial only) [modbus: 9600, dlt645/cjt188: 2400].")
@click.option("--parity", default=None, help="Comma-separated parities to try: N, E, O [modbus: N, dlt645/cjt188: E].")
@click.option("--timeout", type=click.FloatRange(0.01, 10), default=None, help="Seconds per unit [modbus: 0.2, dlt645/cjt188: 1.0, bacnet: 3.0].")
@click.option("--protocol", type=click.Choice(["modbus", "dlt645", "cjt188", "bacnet"]), default="modbus", show_default=True,
              help="dlt645: DL/T 645 meters (address read, then a probe per address); cjt188: the one CJ/T 188 "
                   "water/heat/gas meter on the line (address read, then a read of its data); bacnet: Who-Is, then points.")
@click.option("--address", "addresses", multiple=True, help="dlt645: a meter address to probe (repeatable).")
@click.option("--local", default="0.0.0.0:47808", show_default=True, help="bacnet: the gateway's BACnet/IP address.")
@click.option("--instance", type=click.IntRange(0, 4194302), default=None, help="bacnet: only this device instance.")
def command(port: str | None, tcp: str | None, units: str | None, baud: str | None, parity: str | None,
            timeout: float | None, protocol: str, addresses: tuple[str, ...], local: str, instance: int | None) -> None:
    """Find responding Modbus unit ids and guess their meter or charger profile (or, with --protocol,
    DL/T 645 meters, a CJ/T 188 meter or BACnet devices and their points).

    Ends with ready-to-paste config blocks ([lines.X] and [[devices]]) for what answered.
    """
    if protocol == "bacnet":  # --tcp HOST:PORT: a directed Who-Is; none: broadcast on the local network
        from .scan_bacnet import scan_bacnet

        draft = scan_bacnet(local, tcp, instance, timeout or 3.0)
        if draft.devices:
            click.echo()
            click.echo(banner(draft.render()))
        raise SystemExit(0 if draft.devices else 1)
    if (port is None) == (tcp is None):
        raise click.UsageError("give exactly one of --port PORT or --tcp HOST:PORT")
    if protocol == "cjt188":
        from .scan_cjt188 import scan_meter

        bauds, parities = parse_settings(baud or "2400", parity or "E")
        where = port if tcp is None else "socket://{}:{}".format(*parse_hostport(tcp, "--tcp"))
        try:
            draft = scan_meter(where, bauds, parities, timeout or 1.0)
        except BusUnavailable as e:
            raise click.ClickException(str(e)) from None
        if draft.lines:
            click.echo()
            click.echo(banner(draft.render()))
        raise SystemExit(0 if draft.devices else 1)
    if protocol == "dlt645":
        from .scan_dlt645 import parse_addresses, report, scan_meters

        bauds, parities = parse_settings(baud or "2400", parity or "E")
        where = port
        if tcp is not None:
            host, tcp_port = parse_hostport(tcp, "--tcp")
            where = f"socket://{host}:{tcp_port}"
        try:
            draft = report(scan_meters(where, bauds, parities, parse_addresses(addresses), timeout or 1.0))
        except BusUnavailable as e:
            raise click.ClickException(str(e)) from None
        if draft.lines:
            click.echo()
            click.echo(banner(draft.render()))
        raise SystemExit(0 if draft.devices else 1)
    baud, parity, timeout = baud or "9600", parity or "N", timeout or 0.2
    units = units or default_units(tcp=tcp is not None)
    ids = parse_units(units)
    bauds, parities = parse_settings(baud, parity)
    if tcp:
        parse_hostport(tcp, "--tcp")
    try:
        scans = scan_lines(port, tcp, ids, bauds, parities, timeout)
    except BusUnavailable as e:
        raise click.ClickException(str(e)) from None
    any_found = False
    draft = Draft()
    for scan in scans:
        found = scan.findings
        click.echo(f"== {scan.label}: {len(ids)} unit id(s) asked")
        for f in found:
            if f.sunspec is not None:
                click.echo(f"unit {f.unit:3d}: answers; {f.probes}")
            elif f.status == "ok":
                guess = f"profile {f.profile} ({f.probes})" if f.profile else "no known profile matched"
                click.echo(f"unit {f.unit:3d}: answers; {guess}")
            elif f.status == "exception":
                guess = f"; profile {f.profile} ({f.probes})" if f.profile else ""
                click.echo(f"unit {f.unit:3d}: device present, refused FC04 0 with {f.detail}{guess}")
            elif f.status == "garbled":
                click.echo(f"unit {f.unit:3d}: garbled reply (bad CRC or short frame): check baud, parity, wiring")
        silent = sum(f.status == "timeout" for f in found)
        absent = sum(f.status == "absent" for f in found)
        any_found |= silent + absent < len(found)
        click.echo(f"no reply from {silent} unit id(s) within {timeout:g} s")
        if absent:
            click.echo(f"no device at {absent} unit id(s): the gateway or server answered for them "
                       f"(exception 10/11, or 4 with no meter profile behind it)")
    draft_scans(draft, scans)
    if draft.lines:
        click.echo()
        click.echo(banner(draft.render()))
    if not any_found:
        raise SystemExit(1)
