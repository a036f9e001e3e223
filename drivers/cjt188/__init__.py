"""CJ/T 188 water, heat and gas meters on RS-485 / M-Bus converters or through a TCP DTU (serial line)."""

from agent.contract import DriverSpec

from .driver import Cjt188Config, Cjt188Driver

SPEC = DriverSpec(
    type="cjt188",
    config_model=Cjt188Config,
    factory=Cjt188Driver,
    summary="CJ/T 188 water, heat or gas meter (RS-485/M-Bus or a TCP DTU): volume, heat, flow, temperatures, valve, battery.",
)
