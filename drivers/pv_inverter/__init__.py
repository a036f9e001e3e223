"""Inverters on their vendor's own Modbus map (Huawei SUN2000, Sungrow SH), through register profiles."""

from agent.contract import DriverSpec

from .driver import PvInverterConfig, PvInverterDriver

SPEC = DriverSpec(
    type="pv_inverter",
    config_model=PvInverterConfig,
    factory=PvInverterDriver,
    summary="PV and hybrid inverters on vendor Modbus maps (Huawei SUN2000, Sungrow SH profiles): PV, battery, "
            "grid meter; battery power, export limit and output cap writable.",
    writable=True,
)
