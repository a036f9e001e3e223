"""Helpers shared by CLI commands: config loading with exit code 2, logging setup."""

from __future__ import annotations

import sys

import click

from ..config import AgentConfig
from ..config.loader import read_config
from ..errors import ConfigError
from ..logsetup import setup_logging

__all__ = ["EXIT_CONFIG", "config_option", "load_or_exit", "setup_logging"]

EXIT_CONFIG = 2

config_option = click.option(
    "--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
    envvar="EDGE_AGENT_CONFIG", help="Config file (TOML). Env: EDGE_AGENT_CONFIG.",
)


def load_or_exit(path: str) -> AgentConfig:
    """The config for a technician command (status, buffer, read). These never talk to the broker, so a
    ``${cred:...}`` that only the service can see, or a ``${VAR}`` for a secret (a password, token or key)
    set only in the service's environment, is not needed and does not fail them."""
    try:
        return read_config(path, defer_credentials=True, defer_secrets=True).config
    except ConfigError as e:
        click.echo(f"config invalid: {len(e.problems)} problem(s)", err=True)
        for p in e.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(EXIT_CONFIG)
