"""CJ/T 188 water, heat and gas meters on RS-485 / M-Bus converters or through a TCP DTU (serial line)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Cjt188Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="cjt188",
    config_model="drivers.cjt188.config:Cjt188Config",
    factory=Cjt188Driver,
    summary="CJ/T 188 water, heat or gas meter (RS-485/M-Bus or a TCP DTU): volume, heat, flow, temperatures, valve, battery.",
)

__getattr__ = lazy_exports(__name__, {"Cjt188Config": "drivers.cjt188.config"})
