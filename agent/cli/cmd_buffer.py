"""``edge-agent buffer``: inspect the outbox read-only (safe while the agent runs; creates no file)."""

import json
import sqlite3
import sys
from typing import NoReturn

import click

from ..config import AgentConfig
from ..store.outbox import Outbox, OutboxCorrupt, OutboxError, OutboxMissing
from ..store.quarantine import quarantined_files
from .common import load_or_exit

EXIT_NO_OUTBOX = 1

# accepted before the subcommand (``buffer --config FILE stats``) and after it (``buffer stats --config FILE``)
_config_help = "Config file (TOML). Env: EDGE_AGENT_CONFIG."


def _config_opt(fn):
    return click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                        envvar="EDGE_AGENT_CONFIG", help=_config_help)(fn)


@click.group("buffer")
@_config_opt
@click.pass_context
def command(ctx: click.Context, config_path: str | None) -> None:
    """Inspect the outbox (the messages not yet acknowledged by the broker)."""
    ctx.obj = {"config_path": config_path}


def _load(ctx: click.Context, config_path: str | None) -> AgentConfig:
    path = config_path or (ctx.obj or {}).get("config_path")
    if not path:
        raise click.UsageError("Missing option '--config' / '-c' (before or after the subcommand).")
    return load_or_exit(path)


def _open(cfg: AgentConfig) -> Outbox:
    path = cfg.outbox_path
    try:
        return Outbox(path, max_bytes=cfg.store.max_bytes, gateway=cfg.gateway.id, readonly=True)
    except OutboxMissing:
        click.echo(f"no outbox at {path}: the agent has not run with this state directory", err=True)
    except OutboxCorrupt as e:
        _unreadable(cfg, e.__cause__ or e)
    except OutboxError as e:
        click.echo(str(e), err=True)
    sys.exit(EXIT_NO_OUTBOX)


def _unreadable(cfg: AgentConfig, e: BaseException) -> NoReturn:
    path = cfg.outbox_path
    click.echo(f"outbox {path} is corrupt ({e}); its messages cannot be read. The agent sets it aside as "
               f"{path.name}.corrupt-<UTC time> and starts a new outbox the next time it starts.", err=True)
    sys.exit(EXIT_NO_OUTBOX)


@command.command("stats")
@_config_opt
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Depth, size, oldest message and drops."""
    cfg = _load(ctx, config_path)
    ob = _open(cfg)
    try:
        s = ob.stats()
    except sqlite3.DatabaseError as e:
        _unreadable(cfg, e)
    finally:
        ob.close()
    d = {"path": str(cfg.outbox_path), "depth": s.depth, "bytes": s.bytes, "oldest_created_ms": s.oldest_created_ms,
         "drops": dict(s.drops), "last_seq": s.last_seq, "stream": s.stream,
         "quarantined": [str(p) for p in quarantined_files(cfg.outbox_path)]}
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            click.echo(f"{k:<18} {v}")


@command.command("export")
@_config_opt
@click.option("--limit", type=int, default=None, help="At most this many messages (oldest first).")
@click.option("--output", "-o", type=click.File("w", lazy=True), default="-", help="File to write (default stdout).")
@click.pass_context
def export(ctx: click.Context, config_path: str | None, limit: int | None, output) -> None:
    """Write unsent messages as JSON lines (oldest first), without removing them."""
    cfg = _load(ctx, config_path)
    ob = _open(cfg)
    try:
        n = ob.export(output, limit=limit)
    except sqlite3.DatabaseError as e:
        _unreadable(cfg, e)
    finally:
        ob.close()
    if output is not sys.stdout:
        click.echo(f"exported {n} messages", err=True)
