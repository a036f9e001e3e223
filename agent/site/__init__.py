"""Site energy management: a site limit against a grid meter, fair sharing, time-of-use preference.

The config models (pydantic), the controller and the allocator load when asked for: a gateway without a
``[site]`` table never loads them, and a run on a plain config (agent.contract.plain) not the models."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .bases import Period

if TYPE_CHECKING:
    from .allocator import Demand, allocate, fair_share
    from .config import GridMeterRef, SiteConfig, TouConfig
    from .controller import SiteController

_LAZY = {"Demand": "allocator", "allocate": "allocator", "fair_share": "allocator", "SiteController": "controller",
         "GridMeterRef": "config", "SiteConfig": "config", "TouConfig": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Demand", "GridMeterRef", "Period", "SiteConfig", "SiteController", "TouConfig", "allocate", "fair_share"]
