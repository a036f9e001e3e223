"""Modbus EV chargers (Phoenix CHARX, KEBA P30, ABB Terra AC) through register profiles."""

from agent.contract import DriverSpec

from .driver import ModbusChargerConfig, ModbusChargerDriver

SPEC = DriverSpec(
    type="modbus_charger",
    config_model=ModbusChargerConfig,
    factory=ModbusChargerDriver,
    summary="EV charger over Modbus (CHARX, KEBA P30, ABB Terra AC profiles): IEC 61851 state, power, energy; start/stop/current limit",
    writable=True,
)
