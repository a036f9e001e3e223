"""BACnet/IP devices (air-handling units, chillers ...) through bacpypes3, and AHU fault diagnosis."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import BacnetDriver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="bacnet",
    config_model="drivers.bacnet.config:BacnetConfig",
    factory=BacnetDriver,
    summary="BACnet/IP device: Who-Is, ReadPropertyMultiple, COV, status flags as quality; "
            "writes at a priority; AHU fault diagnosis (G36, APAR).",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"BacnetConfig": "drivers.bacnet.config"})
