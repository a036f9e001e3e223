"""Shared charger model: IEC 61851 state, metrics, config keys, and an EV physics model for simulators."""

from typing import TYPE_CHECKING

from agent.contract.lazy import lazy_exports

from .ev import Arrivals, Car, EvseModel
from .model import (
                    CHARGER_METRICS,
                    ChargerControl,
                    ChargerDriver,
                    ChargerMetric,
                    ChargerPoint,
                    ChargerStatus,
                    IecState,
)

# the config class (pydantic) is imported on first use: the run time reads its plain twin
__getattr__ = lazy_exports(__name__, {"ChargerConfig": "drivers.charger_common.config"})

if TYPE_CHECKING:
    from .config import ChargerConfig

__all__ = ["Arrivals", "Car", "CHARGER_METRICS", "ChargerConfig", "ChargerControl", "ChargerDriver", "ChargerMetric",
           "ChargerPoint", "ChargerStatus", "EvseModel", "IecState"]
