from .loader import load_config, load_config_text
from .schema import AgentConfig, DeviceConfig, LineConfig

__all__ = ["AgentConfig", "DeviceConfig", "LineConfig", "load_config", "load_config_text"]
