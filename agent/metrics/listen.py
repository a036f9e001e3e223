"""The ``[metrics]`` section's run-time side, without pydantic: its listen address and the behaviour
its model shares with the plain twin the running agent reads (:mod:`agent.contract.plain`)."""

from __future__ import annotations

import ipaddress

DEFAULT_LISTEN = "127.0.0.1:9108"


def split_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port). Raises ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"{text!r} names no host: give 127.0.0.1 (this machine only) or an address")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


class MetricsBase:
    """Mixin of :class:`~agent.metrics.config.MetricsConfig`."""

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)
