"""Configuration models. Every model is frozen and forbids unknown keys.

The device and line bases live in the driver contract (:mod:`agent.contract`) and are re-exported here.
This module holds the core sections (:class:`CoreConfig`); the features register theirs
(:mod:`agent.config.sections`) and :data:`AgentConfig`, the type of a whole config file, is
assembled from both on first use.

The file is validated in two passes (see ``agent.config.loader``): first each section and each
device against its own schema (a device's schema comes from its driver), then cross-checks.
"""

from __future__ import annotations

import typing
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from ..contract.config import NAME_PATTERN, DeviceConfig, Frozen, LineConfig, Name
from .core import CoreBase, MqttBase, MqttProtocol, split_endpoint
from .sections import assemble, registered_sections


class GatewayConfig(Frozen):
    id: Name = Field(description="Gateway id; appears in every topic and payload.")
    state_dir: Path = Field(Path("/var/lib/edge-agent"), description="Writable state: outbox, caches, counters.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    require_time_sync: bool = Field(False, description="A time source (kernel, timesyncd, chrony, ntpd) must confirm "
                                    "sync; until then readings are held and then repaired (set on Pis with fake-hwclock).")


class TlsConfig(Frozen):
    enabled: bool = Field(True, description="Set false to keep the table but connect in plain text.")
    ca_file: Path | None = Field(None, description="CA bundle; system CAs when omitted. Verification is always on.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Client key for mutual TLS.")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(MqttBase, Frozen):
    host: str | None = Field(None, description="Broker host; required by `run` (and reported by `check`) unless `hosts` is set.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    hosts: tuple[str, ...] = Field((), description="Broker nodes of a cluster as `host` or `host:port` (default port: `port`), tried in order: when a connection fails or is lost the next one is used; unacknowledged messages are sent again, in order, to the node connected next. Instead of `host`.")
    protocol: MqttProtocol = Field(MqttProtocol.V5, description="MQTT protocol version. With 5 a broker can refuse a message (e.g. by its ACL) and the gateway keeps it; a 3.1.1 broker acknowledges a refused message and drops it.")
    client_id: str | None = Field(None, description="Defaults to edge-agent-{gateway}.")
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(None, description="Broker password; use ${ENV} or ${cred:NAME}, never plain text.")
    tls: TlsConfig | None = Field(None, description="TLS settings; a [mqtt.tls] table turns TLS on.")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds between MQTT keepalive pings.")
    topic_prefix: str = Field("edge", pattern=r"^[^#+]+$", description="First topic level: {prefix}/{gateway}/...")
    readings_per_message: int = Field(500, ge=1, le=10_000, description="Most readings of one device in one telemetry message (a message holds what the device read since the last commit, up to this many; 500 readings of a meter are about 46 kB).")
    max_inflight: int = Field(200, ge=1, le=60_000, description="QoS 1 messages awaiting PUBACK at once.")
    reconnect_min: float = Field(0.5, gt=0, description="Shortest wait before reconnecting (s); doubles with jitter.")
    reconnect_max: float = Field(30.0, gt=0, description="Longest wait before reconnecting (s).")

    @model_validator(mode="before")
    @classmethod
    def _hosts(cls, data: Any) -> Any:
        """``hosts`` sets ``host``/``port`` to its first entry (what `check`, `doctor` and logs name)."""
        if not isinstance(data, dict) or not data.get("hosts"):
            return data
        if data.get("host") is not None:
            raise ValueError("set either mqtt.host or mqtt.hosts, not both")
        hosts = data["hosts"]
        if isinstance(hosts, str) or not all(isinstance(h, str) for h in hosts):
            raise ValueError("mqtt.hosts must be a list of \"host\" or \"host:port\" strings")
        nodes = [split_endpoint(h, data.get("port", 1883)) for h in hosts]  # every port made explicit
        return {**data, "host": nodes[0][0], "port": nodes[0][1],
                "hosts": tuple(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)}

class StoreConfig(Frozen):
    path: Path | None = Field(None, description="SQLite outbox; defaults to {state_dir}/outbox.db.")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, description="Disk cap for the outbox (database, WAL and index together); at least 1 MiB.")
    commit_interval: float = Field(0.2, gt=0, le=10, description="Longest wait, in seconds, before readings are committed to the outbox (later arrivals share the commit); a commit starts sooner once commit_readings wait, or once the polls under way have ended and none falls due before the wait would end.")
    commit_readings: int = Field(4096, ge=100, le=1_000_000, description="Readings waiting that start a commit without waiting out commit_interval: bounds a commit's working memory (about 0.25 KB a reading). Raise it, with commit_interval, for fewer commits (fsyncs) at high poll rates.")


class HealthConfig(Frozen):
    interval: float = Field(30.0, ge=1, description="Seconds between health messages.")
    watchdog: bool = Field(True, description="Send sd_notify WATCHDOG pings when running under systemd.")


class CoreConfig(CoreBase, Frozen):
    """A whole config file: the core sections here, the registered feature sections added by
    :func:`agent_config_model` (read them as attributes, e.g. ``config.site``)."""

    gateway: GatewayConfig = Field(description="This gateway.")
    mqtt: MqttConfig = Field(MqttConfig(), description="The broker the agent delivers to.")
    store: StoreConfig = Field(StoreConfig(), description="The outbox on disk.")
    health: HealthConfig = Field(HealthConfig(), description="The health document and the systemd watchdog.")
    lines: dict[Name, Any] = Field(default_factory=dict, description="Shared buses by name.")
    devices: tuple[Any, ...] = ()

    @field_validator("devices")
    @classmethod
    def _devices_are_models(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        for d in v:
            if not isinstance(d, DeviceConfig):
                raise ValueError("devices must be validated by their driver schema")
        return v


CORE_SECTIONS = tuple(CoreConfig.model_fields)


@cache
def agent_config_model() -> type[CoreConfig]:
    """The root config type: the core sections plus every registered feature section."""
    return assemble(CoreConfig, registered_sections())  # type: ignore[return-value]


def __getattr__(name: str) -> Any:
    if name == "AgentConfig":  # assembled on first use: registering the sections imports the features
        return agent_config_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if typing.TYPE_CHECKING:
    AgentConfig = CoreConfig


__all__ = ["CORE_SECTIONS", "NAME_PATTERN", "AgentConfig", "CoreConfig", "DeviceConfig", "Frozen", "GatewayConfig", "HealthConfig", "LineConfig",
           "MqttConfig", "MqttProtocol", "Name", "StoreConfig", "TlsConfig", "split_endpoint"]
