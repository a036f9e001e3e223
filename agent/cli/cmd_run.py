import asyncio
import logging
import os

import click

from ..errors import ConfigError
from .common import EXIT_CONFIG, config_option, load_or_exit, setup_logging


@click.command("run")
@config_option
def command(config_path: str) -> None:
    """Run the agent (what systemd starts). `edge-agent --debug run` logs at DEBUG."""
    cfg = load_or_exit(config_path)
    setup_logging("DEBUG" if os.environ.get("EDGE_AGENT_DEBUG") else cfg.gateway.log_level)
    # said at once: the first start compiles the processing kernels, which can take half a minute
    logging.getLogger("edge_agent").info(
        "config %s loaded: gateway %s, %d device(s), %d line(s); starting (compiling processing kernels on a "
        "first start; `edge-agent warmup` does it ahead)", config_path, cfg.gateway.id, len(cfg.devices), len(cfg.lines))
    from ..app import run_agent

    try:
        asyncio.run(run_agent(cfg))
    except ConfigError as e:
        for p in e.problems:
            click.echo(p, err=True)
        raise SystemExit(EXIT_CONFIG) from None
