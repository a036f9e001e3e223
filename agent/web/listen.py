"""The ``[web]`` section's run-time side, without pydantic: its listen address, its password file and
the behaviour its model shares with the plain twin the running agent reads (:mod:`agent.contract.plain`)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8080"
PASSWORD_FILE = "web-password"  # in the state directory unless password_file names another place


def split_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port). Raises ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"{text!r} names no host: give 127.0.0.1 (this machine only) or a LAN address")
    return host, int(port)


class WebBase:
    """Mixin of :class:`~agent.web.config.WebConfig`."""

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    def password_path(self, state_dir: Path) -> Path:
        return self.password_file or state_dir / PASSWORD_FILE
