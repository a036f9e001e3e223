import asyncio
import logging
import os

import click

from ..errors import ConfigError
from ..store.outbox import OutboxError, OutboxLocked
from ..store.statelock import StateDirLocked, StateLock
from .cmd_check import validate_or_exit
from .common import EXIT_CONFIG, config_option, setup_logging


@click.command("run")
@config_option
@click.option("--once", is_flag=True, help="Poll every device once and print the topics and payloads that would be "
              "published, without a broker, the outbox or any state file; exit 1 if a device failed.")
def command(config_path: str, once: bool) -> None:
    """Run the agent (what systemd starts). Validates first, exactly as `check` does;
    `edge-agent --debug run` logs at DEBUG."""
    if once:
        from .once_output import run_once_command

        raise SystemExit(run_once_command(validate_or_exit(config_path, at_run=False).config))
    cfg = validate_or_exit(config_path, at_run=True).config
    setup_logging("DEBUG" if os.environ.get("EDGE_AGENT_DEBUG") else cfg.gateway.log_level)
    # said at once: the first start compiles the processing kernels, which can take half a minute
    logging.getLogger("edge_agent").info(
        "config %s loaded: gateway %s, %d device(s), %d line(s); starting (compiling processing kernels on a "
        "first start; `edge-agent warmup` does it ahead)", config_path, cfg.gateway.id, len(cfg.devices), len(cfg.lines))
    from ..app import prepare_state_dir, run_agent

    try:
        # one writer per state directory: held until this process ends, however it ends
        with StateLock(prepare_state_dir(cfg)):
            asyncio.run(run_agent(cfg))
    except ConfigError as e:
        for p in e.problems:
            click.echo(p, err=True)
        raise SystemExit(EXIT_CONFIG) from None
    except (StateDirLocked, OutboxLocked) as e:
        click.echo(f"refused: {e}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
    except OutboxError as e:
        click.echo(f"edge-agent: {e}", err=True)
        raise SystemExit(1) from None
