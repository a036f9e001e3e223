"""``edge-agent ingest``: the fleet's upstream consumer (needs the ``[ingest]`` extra).

``migrate`` creates or upgrades the PostgreSQL schema; ``amqp`` consumes a RabbitMQ quorum queue;
``mqtt`` consumes an MQTT 5 shared subscription. The ingest modules are imported only when one of
these runs, so the rest of the CLI works without psycopg and aio-pika installed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from .common import setup_logging

dsn_option = click.option("--dsn", envvar="EDGE_INGEST_DSN", required=True,
                          help="PostgreSQL connection string (libpq). Env: EDGE_INGEST_DSN.")
common = [
    dsn_option,
    click.option("--prefix", default="edge", show_default=True, help="mqtt.topic_prefix of the gateways."),
    click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
                 help="Most messages committed in one transaction."),
    click.option("--linger", default=0.05, show_default=True, type=click.FloatRange(0, 5),
                 help="Seconds a batch waits to fill before it is written."),
    click.option("--stats-file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Write the consumer's counters here as JSON (replaced atomically)."),
    click.option("--stats-interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600)),
    click.option("--log-level", default="INFO", show_default=True),
]


def _options(f):
    for opt in reversed(common):
        f = opt(f)
    return f


def _need_extra() -> None:
    try:
        import aio_pika  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as e:
        raise click.ClickException(f"{e.name} is not installed: install the ingest extra "
                                   "(pip install 'edge-agent[ingest]')") from None


@click.group("ingest")
def command() -> None:
    """Consume gateway messages from the broker cluster into PostgreSQL (exactly once)."""


@command.command("migrate")
@dsn_option
def migrate_cmd(dsn: str) -> None:
    """Create or upgrade the schema and today's partitions."""
    _need_extra()
    import psycopg

    from ..ingest.migrate import ensure_partitions, migrate
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = migrate(conn)
        created = ensure_partitions(conn)
    click.echo(f"schema version {version}; {len(created)} partitions created")


@command.command("amqp")
@click.option("--url", "urls", multiple=True, required=True,
              help="AMQP URL of a broker node; repeat for each node (tried in turn).")
@click.option("--queue", default="edge-ingest", show_default=True, help="Quorum queue name.")
@_options
def amqp_cmd(urls: tuple[str, ...], queue: str, dsn: str, prefix: str, batch: int, linger: float,
             stats_file: Path | None, stats_interval: float, log_level: str) -> None:
    """Competing consumer on a RabbitMQ quorum queue bound to amq.topic."""
    _need_extra()
    setup_logging(log_level)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    from ..ingest.amqp import consume

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consume(list(urls), dsn, queue=queue, prefix=prefix, batch=batch, linger=linger, stop=stop,
                      stats_file=stats_file, stats_interval=stats_interval)
    asyncio.run(main())


@command.command("mqtt")
@click.option("--host", "hosts", multiple=True, required=True, help="Broker as host:port; repeat for several.")
@click.option("--client-id", required=True, help="Fixed per consumer: its session survives a restart.")
@click.option("--group", default="ingest", show_default=True, help="Shared subscription group.")
@_options
def mqtt_cmd(hosts: tuple[str, ...], client_id: str, group: str, dsn: str, prefix: str, batch: int,
             linger: float, stats_file: Path | None, stats_interval: float, log_level: str) -> None:
    """Consumer on an MQTT 5 shared subscription ($share/GROUP/PREFIX/#)."""
    _need_extra()
    setup_logging(log_level)
    from ..ingest.mqtt5 import SharedConsumer
    endpoints = []
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit():
            raise click.BadParameter(f"{h!r} is not host:port", param_hint="--host")
        endpoints.append((host, int(port)))
    consumer = SharedConsumer(endpoints, dsn, client_id=client_id, group=group, prefix=prefix, batch=batch,
                              linger=linger, stats_file=stats_file, stats_interval=stats_interval)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop.set())
    consumer.run()
    sys.exit(0)
