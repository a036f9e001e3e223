"""Helpers for network simulators: address options, starting a server, running until Ctrl-C."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Coroutine
from typing import Any

import click


def parse_hostport(text: str, option: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``) -> (host, port); a usage error naming the option otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:502)", param_hint=option)
    return host or default_host, int(port)


async def serve_in_background(server: Any, address: str) -> None:
    """Start a pymodbus server; a busy or unusable address is an OSError naming it."""
    try:
        await server.serve_forever(background=True)
    except RuntimeError:  # pymodbus: "Could not start listen, please check address."
        raise OSError(errno.EADDRINUSE, f"cannot listen on {address}: address in use or not available") from None


def run_until_interrupted(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a simulator's main loop until Ctrl-C; a failure to start is one line, not a traceback."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise click.ClickException(e.strerror or str(e)) from None
