"""The config class every charger driver's model builds on (pydantic, imported when validating)."""

from __future__ import annotations

from agent.contract import DeviceConfig
from agent.contract.charger_config import ChargerKeys


class ChargerConfig(DeviceConfig, ChargerKeys):
    """Keys every charger device has, on top of the common device keys."""
