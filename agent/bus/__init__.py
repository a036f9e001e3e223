from .. import config as _config  # noqa: F401 - load config first: it imports the line kinds (breaks an import cycle)
from .base import Bus, BusPool, LineKind, Parity, SerialSettings
from .kinds import LINE_KINDS

__all__ = ["Bus", "BusPool", "LineKind", "Parity", "SerialSettings", "LINE_KINDS"]
