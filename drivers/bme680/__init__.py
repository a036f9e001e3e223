"""Bosch BME680 environmental sensor (I2C)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Bme680Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="bme680",
    config_model="drivers.bme680.config:Bme680Config",
    factory=Bme680Driver,
    metrics="drivers.bme680.driver:metrics_for",  # validation lists them without building the driver (its line)
    summary="Bosch BME680 temperature/humidity/pressure/gas sensor on an I2C line (adafruit library).",
)

__getattr__ = lazy_exports(__name__, {"Bme680Config": "drivers.bme680.config"})
