"""MQTT topic layout. Stable: subscribers depend on it (see docs/payloads.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    gateway: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway}"

    @property
    def status(self) -> str:  # retained "online" / LWT "offline"
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def audit(self) -> str:
        return f"{self.base}/audit"

    def telemetry(self, device: str) -> str:
        return f"{self.base}/telemetry/{device}"

    def agg(self, device: str) -> str:
        return f"{self.base}/agg/{device}"

    def command(self, device: str) -> str:
        return f"{self.base}/cmd/{device}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def command_result(self, device: str) -> str:
        return f"{self.base}/cmd/{device}/result"

    @property
    def config_set(self) -> str:  # signed config push (docs/fleet.md)
        return f"{self.base}/config/set"

    @property
    def ops_filter(self) -> str:  # status / doctor on request
        return f"{self.base}/ops/+"

    def remote_of(self, topic: str) -> str | None:
        """"config" for the config push topic, the operation for ``ops/{op}``, else None."""
        if topic == self.config_set:
            return "config"
        head = f"{self.base}/ops/"
        if topic.startswith(head) and "/" not in topic[len(head):]:
            return "ops/" + topic[len(head):]
        return None

    def device_of_command(self, topic: str) -> str | None:
        """The device named by a command topic ("" for an empty device level), or None if not one."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head):]
        return rest if "/" not in rest else None
