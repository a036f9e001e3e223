"""The ``edge-agent`` command line. Each command lives in its own module under agent/cli/, imported
only when that command runs (or help lists it): ``run`` does not load every other command's libraries.

No traceback reaches a user: an error nobody anticipated becomes one line naming it, plus a hint to
rerun with ``--debug`` (or ``EDGE_AGENT_DEBUG=1``) to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import describe_error

# Command modules; each defines a click command or group named ``command``.
COMMAND_MODULES = [
    "agent.cli.cmd_check",
    "agent.cli.cmd_drivers",
    "agent.cli.cmd_run",
    "agent.cli.cmd_status",
    "agent.cli.cmd_buffer",
    "agent.cli.cmd_read",
    "agent.cli.cmd_simulate",
    "agent.cli.cmd_demo",
    "agent.cli.cmd_scan",
    "agent.cli.cmd_init",
    "agent.cli.cmd_warmup",
    "agent.cli.cmd_setup",
    "agent.cli.cmd_doctor",
    "agent.cli.cmd_ingest",
    "agent.cli.cmd_fleet",
]

DEBUG_ENV = "EDGE_AGENT_DEBUG"
EXIT_RUNTIME = 1


COMMANDS = {module.rsplit(".cmd_", 1)[1]: module for module in COMMAND_MODULES}  # name -> its module


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(importlib.import_module(COMMANDS[cmd_name]).command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-agent")
@click.option("--debug", is_flag=True, help=f"Show the full traceback of an unexpected error (env: {DEBUG_ENV}=1).")
def cli(debug: bool) -> None:
    """edge-agent: poll devices, keep every reading safe, forward over MQTT."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def announce_service_start(argv: list[str]) -> None:
    """``run`` started by systemd (Type=notify): extend the start timeout before anything heavy is
    imported or the config is read, so a slow start-up is covered from its first second on."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["run"] and "--once" not in argv:
        from ..sdnotify import START_UP_S, Notifier

        Notifier().extend_start(START_UP_S, "starting: loading the program and the config")


# numpy's OpenBLAS starts a thread per core that spins at load (≈ 50 ms of CPU at every start of a
# 2-core gateway) and holds buffers; the agent does no linear algebra. A value set by the user wins.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def main() -> None:
    for name, value in BLAS_THREADS.items():
        os.environ.setdefault(name, value)  # before numpy loads; the run-time process inherits it
    announce_service_start(sys.argv[1:])
    from .without_ssl import prepare

    prepare(sys.argv[1:])  # `run` with no TLS configured: asyncio and paho without OpenSSL
    try:
        cli(prog_name="edge-agent")
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line instead of a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(f"error: {describe_error(e)}", err=True)
        click.echo("(rerun as 'edge-agent --debug ...' for the full traceback)", err=True)
        sys.exit(EXIT_RUNTIME)


if __name__ == "__main__":
    main()
