import asyncio

import click

from ..errors import ConfigError
from .cmd_check import validate_or_exit
from .common import EXIT_CONFIG, config_option, setup_logging


@click.command("run")
@config_option
def command(config_path: str) -> None:
    """Run the agent (what systemd starts). Validates first, exactly as `check` does."""
    cfg = validate_or_exit(config_path, at_run=True).config
    setup_logging(cfg.gateway.log_level)
    from ..app import run_agent

    try:
        asyncio.run(run_agent(cfg))
    except ConfigError as e:
        for p in e.problems:
            click.echo(p, err=True)
        raise SystemExit(EXIT_CONFIG) from None
