"""Plantower PMS5003 particulate-matter sensor (UART)."""

from agent.contract import DriverSpec

from .driver import Pms5003Config, Pms5003Driver

SPEC = DriverSpec(
    type="pms5003",
    config_model=Pms5003Config,
    factory=Pms5003Driver,
    summary="Plantower PMS5003 particulate sensor (PM1/PM2.5/PM10, particle counts) on a serial line.",
)
