"""Nova SDS011 particulate-matter sensor (UART)."""

from agent.contract import DriverSpec

from .driver import Sds011Config, Sds011Driver

SPEC = DriverSpec(
    type="sds011",
    config_model=Sds011Config,
    factory=Sds011Driver,
    summary="Nova SDS011 PM2.5/PM10 sensor on a serial line (query mode, optional laser duty cycle).",
)
