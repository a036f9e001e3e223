"""``edge-agent fleet``: N simulated gateways (real outbox, real uplink) publishing to a broker cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from ..config.schema import MqttProtocol


@click.command("fleet")
@click.option("--gateways", "-n", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--processes", "-p", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--host", "hosts", multiple=True, required=True,
              help="Broker node host:port; repeat for each node (gateways start on different nodes).")
@click.option("--protocol", type=click.Choice([p.value for p in MqttProtocol]), default=MqttProtocol.V311.value,
              show_default=True)
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where each gateway's outbox lives (one directory per gateway).")
@click.option("--prefix", default="edge", show_default=True, help="Topic prefix.")
@click.option("--id-prefix", default="gw", show_default=True, help="Gateway ids are this + a 5-digit number.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.01, 3600),
              help="Seconds between a gateway's telemetry messages.")
@click.option("--readings", default=10, show_default=True, type=click.IntRange(1, 10_000),
              help="Readings per telemetry message.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(0, None),
              help="Seconds of producing; then the outboxes drain.")
@click.option("--resend", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Probability per cycle that a gateway publishes a stored message again (a lost PUBACK).")
@click.option("--energy-every", default=60, show_default=True, type=click.IntRange(0, None),
              help="Cycles per energy aggregate message (0: none).")
@click.option("--drain-timeout", default=120.0, show_default=True, type=click.FloatRange(0, None))
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-gateway summary (last seq, messages, readings, resends) here as JSON.")
def command(gateways: int, processes: int, hosts: tuple[str, ...], protocol: str, state_dir: Path, prefix: str,
            id_prefix: str, interval: float, readings: int, duration: float, resend: float, energy_every: int,
            drain_timeout: float, summary: Path | None) -> None:
    """Simulate a fleet of gateways: real outboxes and uplinks, simulated meters."""
    from ..fleet.runner import FleetSpec, run_fleet
    spec = FleetSpec(gateways=gateways, processes=processes, hosts=hosts, state_dir=state_dir,
                     protocol=MqttProtocol(protocol), prefix=prefix, id_prefix=id_prefix, interval=interval,
                     readings=readings, duration=duration, resend=resend, energy_every=energy_every,
                     drain_timeout=drain_timeout)
    result = run_fleet(spec)
    if summary is not None:
        summary.write_bytes(orjson.dumps(result))
    brief = {k: v for k, v in result.items() if k != "gateways"}
    click.echo(orjson.dumps(brief).decode())
    if result["undelivered"]:
        click.echo(f"error: {result['undelivered']} messages were not acknowledged within the drain timeout",
                   err=True)
        sys.exit(1)
