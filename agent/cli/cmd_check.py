"""``edge-agent check``: the validation ``run`` performs first, without touching any device.

Errors (exit 2) are exactly what ``run`` would refuse to start with. Warnings (exit 0) are facts of
this machine that ``run`` on the target may not share: a systemd credential (only the service sees
``$CREDENTIALS_DIRECTORY``), a serial port that is not plugged in here.
"""

import sys

import click

from ..config.validate import Validation, validate
from ..errors import ConfigError
from .common import EXIT_CONFIG, config_option
from .exposure import unsigned_commands


def validate_or_exit(path: str, *, at_run: bool) -> Validation:
    """Shared by ``check`` and ``run``: print every problem and exit 2, or print warnings."""
    try:
        result = validate(path, at_run=at_run)
    except ConfigError as e:
        click.echo(f"config invalid: {len(e.problems)} problem(s)", err=True)
        for p in e.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_CONFIG)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if (exposed := unsigned_commands(result.config)) is not None:
        click.echo(f"warning: {exposed}", err=True)
    return result


@click.command("check")
@config_option
def command(config_path: str) -> None:
    """Validate a config file as `run` would, without touching any device (exit 0 valid, 2 invalid).

    Missing referenced files (TLS CA, replay CSV) and a missing [mqtt] host are errors; a systemd
    credential that only the service can see, and a serial port not plugged in here, are warnings.
    """
    from ..timesync import time_sync_status

    result = validate_or_exit(config_path, at_run=False)
    cfg = result.config
    click.echo(f"config OK: gateway {cfg.gateway.id}, {len(cfg.devices)} device(s), {len(cfg.lines)} line(s)")
    for d in cfg.devices:
        line = f" on {', '.join(d.lines_used())}" if d.lines_used() else ""
        click.echo(f"  {d.name:<20} {d.type:<16} every {d.poll_interval:g} s{line}{'' if d.enabled else ' (disabled)'}")
    if result.notes:
        click.echo("values from outside the file:")
        for n in result.notes:
            click.echo(f"  {n}")
    sync = time_sync_status()
    state = {True: "synchronised", False: "not synchronised", None: "cannot be determined"}[sync.synchronized]
    click.echo(f"clock here: {state} (decided by: {sync.source}; {sync.detail})")
    if cfg.gateway.require_time_sync and sync.synchronized is False:
        click.echo("  with require_time_sync = true, readings taken now would be flagged clock_unsynced")
