"""A local metrics endpoint: the health figures in Prometheus text format on ``/metrics``.

Off by default; bound to localhost unless ``allow_remote`` is set (see ``MetricsConfig``).
"""

from typing import TYPE_CHECKING

from ..contract.lazy import lazy_exports

# the section's model (pydantic) on first use: the running agent reads its plain twin
__getattr__ = lazy_exports(__name__, {"MetricsConfig": "agent.metrics.config"})

if TYPE_CHECKING:
    from .config import MetricsConfig

__all__ = ["MetricsConfig"]
