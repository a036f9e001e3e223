"""The ``edge-agent`` click group: its commands, each imported when it runs (or help lists it)."""

from __future__ import annotations

import importlib
import os

import click

from .main import DEBUG_ENV

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
