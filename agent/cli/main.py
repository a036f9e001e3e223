"""The ``edge-agent`` command line. Each command lives in its own module under agent/cli/.

No traceback reaches a user: an error nobody anticipated becomes one line naming it, plus a hint to
rerun with ``--debug`` (or ``EDGE_AGENT_DEBUG=1``) to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

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


class _LazyGroup(click.Group):
    """Imports a command's module when that command is asked for: ``run`` (the service) does not
    load every other command and what it imports."""

    _modules = {m.rpartition(".cmd_")[2]: m for m in COMMAND_MODULES}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._modules:
            self.add_command(importlib.import_module(self._modules[cmd_name]).command)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-agent")
@click.option("--debug", is_flag=True, help=f"Show the full traceback of an unexpected error (env: {DEBUG_ENV}=1).")
def cli(debug: bool) -> None:
    """edge-agent: poll devices, keep every reading safe, forward over MQTT."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def describe_error(e: BaseException) -> str:
    """One line naming what went wrong (OSError texts already name the file or address)."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    text = str(e) or type(e).__name__
    return text.splitlines()[0] if isinstance(e, OSError) else f"{type(e).__name__}: {text.splitlines()[0]}"


def main() -> None:
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
