"""Small helpers for simulator command lines."""

from __future__ import annotations

import click


def parse_hostport(text: str, option: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``) -> (host, port); a usage error naming the option otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:502)", param_hint=option)
    return host or default_host, int(port)
