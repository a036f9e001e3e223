"""An example edge-agent driver package: a thermometer speaking ASCII on a serial line."""

from agent.contract import DriverSpec

from .driver import ThermometerConfig, ThermometerDriver

SPEC = DriverSpec(
    type="example_thermometer",
    config_model=ThermometerConfig,
    factory=ThermometerDriver,
    summary="Example thermometer: temperature and humidity, ASCII request/reply on a serial line.",
    writable=True,
)
