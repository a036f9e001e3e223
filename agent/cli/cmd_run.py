import logging
import os

import click

from ..runtime import EXEC_ENV, beside
from ..sdnotify import START_UP_S, Notifier
from . import without_ssl
from .cmd_check import validate_or_exit
from .common import config_option, setup_logging


@click.command("run")
@config_option
@click.option("--once", is_flag=True, help="Poll every device once and print the topics and payloads that would be "
              "published, without a broker, the outbox or any state file; exit 1 if a device failed.")
def command(config_path: str, once: bool) -> None:
    """Run the agent (what systemd starts). Validates first, exactly as `check` does, then runs in a lean
    run-time process (the same PID); `edge-agent --debug run` logs at DEBUG."""
    if once:
        from .once_output import run_once_command

        raise SystemExit(run_once_command(validate_or_exit(config_path, at_run=False).config))
    from ..remote import ConfigFiles, restart
    from ..remote.restart import fail_trial, start_trial

    if beside.validating():  # a rollback or a start again with OpenSSL: the run-time process starts `run` again
        restart.START_AGAIN = beside.hand_back

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
    if beside.validating():  # the run-time process started beside this one waits for the config
        from ..runtime.start import handoff_meta

        beside.hand_over(cfg, handoff_meta(cfg, config_path=config_path, trial=trial))
    if os.environ.get(EXEC_ENV) != "0" and not without_ssl.in_one_process:
        from ..runtime.start import exec_runtime

        # the click command line, the loader and the hints stay behind: the agent runs in python -OO
        exec_runtime(cfg, config_path=config_path, trial=trial, hidden=without_ssl.hidden,
                     pymodbus_clients=without_ssl.pymodbus_clients)  # returns only if it could not
    without_ssl.finish()  # what prepare() left to the run-time process, imported here instead
    from ..runtime.run import run

    run(cfg, config_path=config_path, trial=trial)
