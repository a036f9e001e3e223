"""Shared charger model: IEC 61851 state, metrics, config keys, and an EV physics model for simulators."""

from .ev import Arrivals, Car, EvseModel
from .model import (
                    CHARGER_METRICS,
                    ChargerConfig,
                    ChargerControl,
                    ChargerDriver,
                    ChargerMetric,
                    ChargerPoint,
                    ChargerStatus,
                    IecState,
)

__all__ = ["Arrivals", "Car", "CHARGER_METRICS", "ChargerConfig", "ChargerControl", "ChargerDriver", "ChargerMetric",
           "ChargerPoint", "ChargerStatus", "EvseModel", "IecState"]
