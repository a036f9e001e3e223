"""The ``[metrics]`` section: a local Prometheus endpoint, off by default and bound to localhost."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from ..contract import Frozen

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


class MetricsConfig(Frozen):
    enabled: bool = Field(False, description="Serve the health figures in Prometheus text format on http://LISTEN/metrics.")
    listen: str = Field(DEFAULT_LISTEN, description="HOST:PORT to listen on; a loopback address unless allow_remote = true.")
    allow_remote: bool = Field(False, description="Allow a listen address other programs on the network can reach (no authentication: firewall it).")

    @field_validator("listen")
    @classmethod
    def _listen_ok(cls, v: str) -> str:
        split_listen(v)
        return v

    @model_validator(mode="after")
    def _local_unless_allowed(self) -> MetricsConfig:
        host, _ = split_listen(self.listen)
        if not self.allow_remote and not is_loopback(host):
            raise ValueError(f"listen = {self.listen!r} is reachable from other machines and the endpoint has no "
                             "authentication: use 127.0.0.1, or set allow_remote = true to mean it")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)
