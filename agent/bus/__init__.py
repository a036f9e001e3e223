from .base import Bus, BusPool, LineKind, Parity, SerialSettings
from .kinds import LINE_KINDS

__all__ = ["Bus", "BusPool", "LineKind", "Parity", "SerialSettings", "LINE_KINDS"]
