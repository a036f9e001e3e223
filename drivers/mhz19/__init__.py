"""Winsen MH-Z19B CO2 sensor (UART)."""

from agent.contract import DriverSpec

from .driver import Mhz19Config, Mhz19Driver

SPEC = DriverSpec(
    type="mhz19",
    config_model=Mhz19Config,
    factory=Mhz19Driver,
    summary="Winsen MH-Z19B CO2 sensor on a serial line (ABC setting, warm-up flagging).",
)
