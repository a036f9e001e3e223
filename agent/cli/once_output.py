"""What ``edge-agent run --once`` prints: one ``topic payload`` line per message on stdout (as
``mosquitto_sub -v`` shows them), a summary and every failed device on stderr."""

from __future__ import annotations

import asyncio
import logging
import os

import click

from ..config.schema import AgentConfig
from .common import setup_logging


def run_once_command(cfg: AgentConfig) -> int:
    """Returns the exit code: 0 when every device answered, 1 otherwise."""
    from ..once import run_once

    # the pollers' own up/down lines would repeat the summary below; --debug shows everything
    setup_logging("DEBUG" if os.environ.get("EDGE_AGENT_DEBUG") else "ERROR")
    logging.getLogger("edge_agent.scheduler").setLevel(logging.DEBUG if os.environ.get("EDGE_AGENT_DEBUG")
                                                       else logging.CRITICAL)
    result = asyncio.run(run_once(cfg))
    for m in result.messages:
        click.echo(f"{m.topic} {m.payload.decode()}")
    ok = result.polled - len(result.failures)
    click.echo(f"{result.polled} device(s) polled once: {ok} answered, {len(result.failures)} failed; "
               f"{len(result.messages)} message(s) would be published (seq counts from 1 here; nothing was "
               "sent or stored)", err=True)
    for name, error in result.failures.items():
        click.echo(f"failed: {name}: {error}", err=True)
    return 1 if result.failures else 0
