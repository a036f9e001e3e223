"""Nova SDS011 particulate-matter sensor (UART)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Sds011Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="sds011",
    config_model="drivers.sds011.config:Sds011Config",
    factory=Sds011Driver,
    metrics="drivers.sds011.driver:metrics_for",  # validation lists them without building the driver (its line)
    summary="Nova SDS011 PM2.5/PM10 sensor on a serial line (query mode, optional laser duty cycle).",
)

__getattr__ = lazy_exports(__name__, {"Sds011Config": "drivers.sds011.config"})
