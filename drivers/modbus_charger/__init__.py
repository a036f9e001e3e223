"""Modbus EV chargers (Phoenix CHARX, KEBA P30, ABB Terra AC) through register profiles."""

from agent.contract import DriverSpec

from .driver import ModbusChargerDriver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="modbus_charger",
    config_model="drivers.modbus_charger.config:ModbusChargerConfig",
    factory=ModbusChargerDriver,
    metrics="drivers.modbus_charger.driver:metrics_for",  # validation lists them without building the driver (its line)
    summary="EV charger over Modbus (CHARX, KEBA P30, ABB Terra AC profiles): IEC 61851 state, power, energy; start/stop/current limit",
    writable=True,
)


def __getattr__(name: str):
    if name == "ModbusChargerConfig":
        from .config import ModbusChargerConfig

        return ModbusChargerConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
