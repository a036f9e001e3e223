"""The config file: models and loading (pydantic), imported on first use.

The running agent reads a plain config (:mod:`agent.contract.plain`) and imports only the
pydantic-free :mod:`agent.config.core` of this package.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loader import load_config, load_config_text
    from .schema import AgentConfig, CoreConfig, DeviceConfig, LineConfig, agent_config_model

_WHERE = {"load_config": "loader", "load_config_text": "loader", "CoreConfig": "schema", "DeviceConfig": "schema",
          "LineConfig": "schema", "agent_config_model": "schema"}


def __getattr__(name: str) -> Any:
    if name == "AgentConfig":  # assembled from the registered sections on first use
        from .schema import agent_config_model

        return agent_config_model()
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AgentConfig", "CoreConfig", "DeviceConfig", "LineConfig", "agent_config_model", "load_config",
           "load_config_text"]
