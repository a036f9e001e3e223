"""BACnet/IP devices (air-handling units, chillers ...) through bacpypes3, and AHU fault diagnosis."""

from agent.contract import DriverSpec

from .config import BacnetConfig
from .driver import BacnetDriver

SPEC = DriverSpec(
    type="bacnet",
    config_model=BacnetConfig,
    factory=BacnetDriver,
    summary="BACnet/IP device: Who-Is, ReadPropertyMultiple, COV, status flags as quality; "
            "writes at a priority; AHU fault diagnosis (G36, APAR).",
    writable=True,
)
