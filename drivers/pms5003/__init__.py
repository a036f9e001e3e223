"""Plantower PMS5003 particulate-matter sensor (UART)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import Pms5003Driver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="pms5003",
    config_model="drivers.pms5003.config:Pms5003Config",
    factory=Pms5003Driver,
    metrics="drivers.pms5003.driver:metrics_for",  # validation lists them without building the driver (its line)
    summary="Plantower PMS5003 particulate sensor (PM1/PM2.5/PM10, particle counts) on a serial line.",
)

__getattr__ = lazy_exports(__name__, {"Pms5003Config": "drivers.pms5003.config"})
