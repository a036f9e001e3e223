"""The ``edge-agent`` command line. Each command lives in its own module under agent/cli/."""

from __future__ import annotations

import importlib

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
    "agent.cli.cmd_warmup",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-agent")
def cli() -> None:
    """edge-agent: poll devices, keep every reading safe, forward over MQTT."""


for _name in COMMAND_MODULES:
    cli.add_command(importlib.import_module(_name).command)


def main() -> None:
    cli(prog_name="edge-agent")


if __name__ == "__main__":
    main()
