"""Inverters on their vendor's own Modbus map (Huawei SUN2000, Sungrow SH), through register profiles."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

# the config model (pydantic) is imported when validating, which lists the metrics without the driver
# (numpy); a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="pv_inverter",
    config_model="drivers.pv_inverter.config:PvInverterConfig",
    factory="drivers.pv_inverter.driver:PvInverterDriver",
    metrics="drivers.pv_inverter.registers:metrics_for",
    summary="PV and hybrid inverters on vendor Modbus maps (Huawei SUN2000, Sungrow SH profiles): PV, battery, "
            "grid meter; battery power, export limit and output cap writable.",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"PvInverterConfig": "drivers.pv_inverter.config",
                                      "PvInverterDriver": "drivers.pv_inverter.driver"})
