import asyncio

import click

from ..errors import ConfigError
from .common import EXIT_CONFIG, config_option, load_or_exit, setup_logging


@click.command("run")
@config_option
def command(config_path: str) -> None:
    """Run the agent (what systemd starts)."""
    cfg = load_or_exit(config_path)
    setup_logging(cfg.gateway.log_level)
    from ..app import run_agent

    try:
        asyncio.run(run_agent(cfg))
    except ConfigError as e:
        for p in e.problems:
            click.echo(p, err=True)
        raise SystemExit(EXIT_CONFIG) from None
