"""A local metrics endpoint: the health figures in Prometheus text format on ``/metrics``.

Off by default; bound to localhost unless ``allow_remote`` is set (see ``MetricsConfig``).
"""

from .config import MetricsConfig

__all__ = ["MetricsConfig"]
