"""OCPP 1.6J charge points through a local central system on the gateway."""

from agent.contract import DriverSpec

from .driver import OcppChargerConfig, OcppChargerDriver

SPEC = DriverSpec(
    type="ocpp_charger",
    config_model=OcppChargerConfig,
    factory=OcppChargerDriver,
    summary="EV charge point over OCPP 1.6J (local central system): status, meter values; start/stop/current limit",
    writable=True,
)
