"""Generic Modbus register-map meter driver with a profile library (Eastron, CHINT, Senseair)."""

from agent.contract import DriverSpec

from .driver import ModbusMeterConfig, ModbusMeterDriver

SPEC = DriverSpec(
    type="modbus_meter",
    config_model=ModbusMeterConfig,
    factory=ModbusMeterDriver,
    summary="Modbus RTU/TCP meters from a register profile (sdm120, sdm630, ddsu666, dtsu666, senseair_s8) or inline registers.",
)
