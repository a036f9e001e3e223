"""Bosch BME680 environmental sensor (I2C)."""

from agent.contract import DriverSpec

from .driver import Bme680Config, Bme680Driver

SPEC = DriverSpec(
    type="bme680",
    config_model=Bme680Config,
    factory=Bme680Driver,
    summary="Bosch BME680 temperature/humidity/pressure/gas sensor on an I2C line (adafruit library).",
)
