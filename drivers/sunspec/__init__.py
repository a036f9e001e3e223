"""SunSpec PV inverters, meters and storage over Modbus (discovery of the model chain)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

# the config model (pydantic) is imported when validating, which lists the metrics without the driver
# (numpy); a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="sunspec",
    config_model="drivers.sunspec.config:SunSpecConfig",
    factory="drivers.sunspec.driver:SunSpecDriver",
    metrics="drivers.sunspec.catalog:metrics_for",
    summary="SunSpec inverters (101-103, 111-113, DER 701/702/704/713), meters (201-204), storage (124, 802) over "
            "Modbus RTU/TCP; output limit (123 or 704) and battery power (124) writable.",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"SunSpecConfig": "drivers.sunspec.config", "SunSpecDriver": "drivers.sunspec.driver"})
