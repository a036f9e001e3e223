"""Generic Modbus register-map meter driver with a profile library (Eastron, CHINT, Senseair)."""

from agent.contract import DriverSpec

# the config model (pydantic) is imported when validating, which lists the metrics without the driver
# (numpy); a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="modbus_meter",
    config_model="drivers.modbus_meter.config:ModbusMeterConfig",
    factory="drivers.modbus_meter.driver:ModbusMeterDriver",
    metrics="drivers.modbus_meter.metrics:metrics_for",
    summary="Modbus RTU/TCP meters from a register profile (sdm120, sdm630, ddsu666, dtsu666, senseair_s8) or inline registers.",
)


def __getattr__(name: str):
    if name == "ModbusMeterConfig":
        from .config import ModbusMeterConfig

        return ModbusMeterConfig
    if name == "ModbusMeterDriver":
        from .driver import ModbusMeterDriver

        return ModbusMeterDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
