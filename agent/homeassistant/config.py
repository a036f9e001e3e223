"""Configuration of the Home Assistant integration (``[homeassistant]`` in the config file)."""

from __future__ import annotations

from pydantic import Field

from ..contract import Frozen


class HomeAssistantConfig(Frozen):
    enabled: bool = Field(True, description="Announce devices to Home Assistant; set false to keep the table but stop.")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+/][^#+]*$",
                                  description="Home Assistant's MQTT discovery prefix (its default is homeassistant).")
    node_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                description="Node level of the discovery topics and prefix of every unique_id; "
                                            "defaults to the gateway id.")
    publish_states: bool = Field(True, description="Publish each device's latest good values on "
                                                   "{prefix}/{gateway}/ha/{device}/state after each poll (QoS 0).")
