"""OCPP 1.6J charge points through a local central system on the gateway."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import OcppChargerDriver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="ocpp_charger",
    config_model="drivers.ocpp_charger.config:OcppChargerConfig",
    factory=OcppChargerDriver,
    summary="EV charge point over OCPP 1.6J (local central system): status, meter values; start/stop/current limit",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"OcppChargerConfig": "drivers.ocpp_charger.config"})
