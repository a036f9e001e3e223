"""The core config's run-time side, without pydantic: its enum and the behaviour the models share
with their plain twins (:mod:`agent.contract.plain`), which the running agent reads."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

BROKER_REQUIRED = ("required: the agent needs a broker to deliver to "
                   "(the embedded broker is only for `edge-agent demo`)")


class MqttProtocol(enum.StrEnum):
    V311 = "3.1.1"
    V5 = "5"


def split_endpoint(text: str, default_port: int) -> tuple[str, int]:
    """``host`` or ``host:port`` (``[v6]:port`` too) -> (host, port); ValueError naming the entry."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):  # no port, or a bare IPv6 address
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"mqtt.hosts entry {text!r} is not \"host\" or \"host:port\"")
    return host, int(port)


class MqttBase:
    """Mixin of :class:`~agent.config.schema.MqttConfig`."""

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """The broker nodes to try, in order (one when only ``host`` is set)."""
        if self.hosts:
            return [split_endpoint(h, self.port) for h in self.hosts]
        assert self.host is not None
        return [(self.host, self.port)]


class CoreBase:
    """Mixin of :class:`~agent.config.schema.CoreConfig` (so of the assembled ``AgentConfig``)."""

    @property
    def outbox_path(self) -> Path:
        return self.store.path or (self.gateway.state_dir / "outbox.db")

    def device(self, name: str) -> Any:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


def broker_problem(config: Any) -> str | None:
    return BROKER_REQUIRED if config.mqtt.host is None else None
