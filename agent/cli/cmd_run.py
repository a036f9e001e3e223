import asyncio
import logging
import os

import click

from ..errors import ConfigError
from ..sdnotify import START_UP_S, Notifier
from ..store.outbox import OutboxError, OutboxLocked
from ..store.statelock import StateDirLocked, StateLock
from . import without_ssl
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
    from ..remote import ConfigFiles
    from ..remote.restart import fail_trial, finish_restart, start_trial

    files = ConfigFiles(config_path)
    # a pushed config's first start is a trial (docs/fleet.md); a start re-executed to load OpenSSL
    # (without_ssl.confirm, below) is the same start
    trial = start_trial(files, count=not without_ssl.restarted_by_confirm)
    try:
        cfg = validate_or_exit(config_path, at_run=True).config
    except SystemExit:
        if trial is not None:
            fail_trial(files, "the new config does not pass validation at start")
        raise
    without_ssl.confirm(cfg.mqtt.tls is not None and cfg.mqtt.tls.enabled)
    setup_logging("DEBUG" if os.environ.get("EDGE_AGENT_DEBUG") else cfg.gateway.log_level)
    Notifier().extend_start(START_UP_S, f"starting: config valid, {len(cfg.devices)} device(s); opening the state")
    # said at once: the first start compiles the processing kernels, which can take half a minute
    logging.getLogger("edge_agent").info(
        "config %s loaded: gateway %s, %d device(s), %d line(s); starting (compiling processing kernels on a "
        "first start; `edge-agent warmup` does it ahead)", config_path, cfg.gateway.id, len(cfg.devices), len(cfg.lines))
    from ..app import prepare_state_dir, run_agent

    try:
        # one writer per state directory: held until this process ends, however it ends
        with StateLock(prepare_state_dir(cfg)):
            remote = asyncio.run(run_agent(cfg, config_files=files, trial=trial,
                                           doctor_checks=lambda: _remote_checks(cfg)))
    except Exception as e:
        if trial is not None:
            fail_trial(files, f"{type(e).__name__}: {e}")
        _exit_for(e)
        raise
    if remote.restart is not None:
        finish_restart(remote, files)


def _remote_checks(cfg) -> list[dict[str, str]]:
    from ..doctor import remote_checks  # `doctor` over MQTT; imported only when asked

    return remote_checks(cfg)


def _exit_for(e: Exception) -> None:
    """The exit a start failure gets (2 for a config problem); returns for anything else."""
    if isinstance(e, ConfigError):
        for p in e.problems:
            click.echo(p, err=True)
        raise SystemExit(EXIT_CONFIG) from None
    if isinstance(e, StateDirLocked | OutboxLocked):
        click.echo(f"refused: {e}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
    if isinstance(e, OutboxError):
        click.echo(f"edge-agent: {e}", err=True)
        raise SystemExit(1) from None
