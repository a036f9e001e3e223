"""The ``[metrics]`` section: a local Prometheus endpoint, off by default and bound to localhost."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..contract import Frozen
from .listen import DEFAULT_LISTEN, MetricsBase, is_loopback, split_listen


class MetricsConfig(MetricsBase, Frozen):
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


__all__ = ["DEFAULT_LISTEN", "MetricsConfig", "is_loopback", "split_listen"]
