from typing import TYPE_CHECKING, Any

from .schema import CoreConfig, DeviceConfig, LineConfig, agent_config_model

if TYPE_CHECKING:
    from .loader import load_config, load_config_text
    from .schema import AgentConfig


def __getattr__(name: str) -> Any:
    if name == "AgentConfig":  # assembled from the registered sections on first use
        return agent_config_model()
    if name in ("load_config", "load_config_text"):  # the loader (tomllib, hints) only where a config is read:
        from . import loader  # the run-time process gets its config validated already (agent.runtime)

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AgentConfig", "CoreConfig", "DeviceConfig", "LineConfig", "agent_config_model", "load_config",
           "load_config_text"]
