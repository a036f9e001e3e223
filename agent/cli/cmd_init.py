"""``edge-agent init``: write a starter config from a gateway id, a broker and a scan of the given ports.

The file it writes passes ``edge-agent check``: a ``[gateway]``, an ``[mqtt]`` with the broker (TLS
on for port 8883 unless told otherwise), and a ``[lines.X]`` and ``[[devices]]`` block for every
Modbus unit the scan found with a known meter or charger profile. An existing file is never overwritten without
``--force``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from ..config.loader import parse_config
from ..config.schema import NAME_PATTERN
from ..errors import BusUnavailable, ConfigError
from ..simkit.net import parse_hostport
from ..simkit.snippets import Draft, table
from .cmd_scan import default_units, draft_scans, parse_settings, parse_units, scan_lines

TLS_PORT = 8883


def starter_config(*, gateway_id: str, host: str, port: int, tls: bool, draft: Draft) -> str:
    """The whole starter file as TOML text."""
    head = [
        "# edge-agent configuration written by `edge-agent init`.",
        "# Check it with:  edge-agent check --config THIS_FILE",
        "# Every key is listed in docs/config-reference.md.",
        "",
        table("gateway", {"id": gateway_id}),
        table("mqtt", {"host": host, "port": port}).rstrip("\n"),
        '# username = "..."',
        '# password = "${cred:mqtt-password}"   # systemd LoadCredential=, or "${MQTT_PASSWORD}"',
        "",
    ]
    if tls:
        head += [table("mqtt.tls", {"enabled": True}).rstrip("\n"),
                 '# ca_file = "/etc/edge-agent/ca.pem"   # a private CA; system CAs when omitted', ""]
    body = draft.render()
    if not draft.devices:
        body += "# no devices found: add [lines.X] and [[devices]] blocks (see `edge-agent scan`)\n"
    return "\n".join(head) + "\n" + body


def write_new(path: Path, text: str, *, force: bool) -> None:
    """Write atomically; refuse to replace an existing file unless ``force``."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("init")
@click.option("--gateway-id", required=True, help="Gateway id (appears in every topic).")
@click.option("--broker", required=True, metavar="HOST[:PORT]", help="MQTT broker; port 1883 when omitted.")
@click.option("--tls/--no-tls", default=None, help=f"TLS to the broker (default: on for port {TLS_PORT}).")
@click.option("--scan", "scan_ports", multiple=True, metavar="PORT", help="Serial port to scan for Modbus units (repeatable).")
@click.option("--scan-tcp", "scan_tcp", multiple=True, metavar="HOST:PORT", help="Modbus TCP address to scan (repeatable).")
@click.option("--scan-dlt645", "scan_dlt645", multiple=True, metavar="PORT",
              help="Serial port (2400 8E1) or socket://HOST:PORT to scan for DL/T 645 meters (repeatable).")
@click.option("--dlt645-address", "dlt645_addresses", multiple=True, help="A DL/T 645 meter address to probe (repeatable).")
@click.option("--units", default=None, help="Unit ids to ask on each port (default 1-247; with --scan-tcp also 255).")
@click.option("--baud", default="9600", show_default=True, help="Comma-separated baud rates to try (serial only).")
@click.option("--parity", default="N", show_default=True, help="Comma-separated parities to try: N, E, O.")
@click.option("--timeout", type=click.FloatRange(0.01, 10), default=0.2, show_default=True, help="Seconds per unit.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Config file to write.")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
def command(gateway_id: str, broker: str, tls: bool | None, scan_ports: tuple[str, ...], scan_tcp: tuple[str, ...],
            scan_dlt645: tuple[str, ...], dlt645_addresses: tuple[str, ...], units: str | None, baud: str, parity: str, timeout: float, output: Path, force: bool) -> None:
    """Write a starter config: gateway, broker and the Modbus devices a scan of the given ports finds."""
    import re

    if not re.match(NAME_PATTERN, gateway_id):
        raise click.BadParameter(f"{gateway_id!r}: letters, digits and _.- only, at most 64", param_hint="--gateway-id")
    host, port = parse_hostport(broker if ":" in broker else f"{broker}:1883", "--broker", default_host="")
    if not host:
        raise click.BadParameter(f"{broker!r} names no host", param_hint="--broker")
    if output.exists() and not force:  # before scanning: a scan can take minutes
        raise click.ClickException(f"{output} exists; use --force to overwrite it")
    if units is not None:
        parse_units(units)  # a bad list is refused before any scan
    bauds, parities = parse_settings(baud, parity)
    for t in scan_tcp:
        parse_hostport(t, "--scan-tcp")
    draft = Draft()
    targets = [(p, None) for p in scan_ports] + [(None, t) for t in scan_tcp]
    for serial, tcp in targets:
        asked = units or default_units(tcp=tcp is not None)
        click.echo(f"scanning {serial or tcp} (unit ids {asked}) ...")
        try:
            scans = scan_lines(serial, tcp, parse_units(asked), bauds, parities, timeout)
        except BusUnavailable as e:
            raise click.ClickException(str(e)) from None
        before = len(draft.devices)
        draft_scans(draft, scans)  # one setting per serial port, as check requires
        click.echo(f"  {len(draft.devices) - before} device(s) with a known profile")
    for where in scan_dlt645:
        from .scan_dlt645 import add_meters_to_draft, parse_addresses, scan_meters

        click.echo(f"scanning {where} for DL/T 645 meters (2400 8E1) ...")
        try:
            scans = scan_meters(where, [2400], ["E"], parse_addresses(dlt645_addresses), max(timeout, 1.0))
        except BusUnavailable as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"  {sum(add_meters_to_draft(draft, s) for s in scans)} meter(s)")
    text = starter_config(gateway_id=gateway_id, host=host, port=port,
                          tls=port == TLS_PORT if tls is None else tls, draft=draft)
    try:
        parse_config(text, source=str(output))  # what we write must load; a failure here is our bug
    except ConfigError as e:
        raise click.ClickException("the config written would not be valid: " + "; ".join(e.problems)) from None
    write_new(output, text, force=force)
    click.echo(f"wrote {output}: gateway {gateway_id}, broker {host}:{port}, {len(draft.devices)} device(s)")
    for c in draft.comments:
        click.echo(f"  note: {c}")
    click.echo(f"next: edge-agent check --config {output}")
