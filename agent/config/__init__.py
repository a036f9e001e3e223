from typing import TYPE_CHECKING, Any

from .loader import load_config, load_config_text
from .schema import CoreConfig, DeviceConfig, LineConfig, agent_config_model

if TYPE_CHECKING:
    from .schema import AgentConfig


def __getattr__(name: str) -> Any:
    if name == "AgentConfig":  # assembled from the registered sections on first use
        return agent_config_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AgentConfig", "CoreConfig", "DeviceConfig", "LineConfig", "agent_config_model", "load_config",
           "load_config_text"]
