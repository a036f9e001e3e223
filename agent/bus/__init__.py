from typing import TYPE_CHECKING

from ..contract.lazy import lazy_exports
from .base import Bus, BusPool, LineKind, Parity
from .kinds import LINE_KINDS

__getattr__ = lazy_exports(__name__, {"SerialSettings": "agent.bus.serial_settings"})

if TYPE_CHECKING:
    from .serial_settings import SerialSettings

__all__ = ["Bus", "BusPool", "LineKind", "Parity", "SerialSettings", "LINE_KINDS"]
