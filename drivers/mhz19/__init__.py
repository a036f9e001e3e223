"""Winsen MH-Z19B CO2 sensor (UART)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Mhz19Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="mhz19",
    config_model="drivers.mhz19.config:Mhz19Config",
    factory=Mhz19Driver,
    metrics="drivers.mhz19.driver:config_metrics",  # validation lists them without building the driver (its line)
    summary="Winsen MH-Z19B CO2 sensor on a serial line (ABC setting, warm-up flagging).",
)

__getattr__ = lazy_exports(__name__, {"Mhz19Config": "drivers.mhz19.config"})
