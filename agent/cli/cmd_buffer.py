import json
import sys

import click

from ..store.outbox import Outbox
from .common import config_option, load_or_exit


@click.group("buffer")
def command() -> None:
    """Inspect the outbox (the messages not yet acknowledged by the broker)."""


@command.command("stats")
@config_option
@click.option("--json", "as_json", is_flag=True)
def stats(config_path: str, as_json: bool) -> None:
    """Depth, size, oldest message and drops."""
    cfg = load_or_exit(config_path)
    ob = Outbox(cfg.outbox_path, max_bytes=cfg.store.max_bytes, gateway=cfg.gateway.id)
    try:
        s = ob.stats()
    finally:
        ob.close()
    d = {"path": str(cfg.outbox_path), "depth": s.depth, "bytes": s.bytes, "oldest_created_ms": s.oldest_created_ms,
         "drops": dict(s.drops), "last_seq": s.last_seq}
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            click.echo(f"{k:<18} {v}")


@command.command("export")
@config_option
@click.option("--limit", type=int, default=None, help="At most this many messages (oldest first).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout).")
def export(config_path: str, limit: int | None, output) -> None:
    """Write unsent messages as JSON lines (oldest first), without removing them."""
    cfg = load_or_exit(config_path)
    ob = Outbox(cfg.outbox_path, max_bytes=cfg.store.max_bytes, gateway=cfg.gateway.id)
    try:
        n = ob.export(output, limit=limit)
    finally:
        ob.close()
    if output is not sys.stdout:
        click.echo(f"exported {n} messages", err=True)
