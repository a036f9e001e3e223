"""Host side of the framed serial protocol to microcontroller sensor nodes (see docs/firmware-bridge.md)."""

from agent.contract import DriverSpec
from agent.contract.lazy import lazy_exports

from .driver import McuNodeDriver

# the config model (pydantic) is imported when validating; a run on a plain config needs only the driver
SPEC = DriverSpec(
    type="mcu_node",
    config_model="firmware_bridge.config:McuNodeConfig",
    factory=McuNodeDriver,
    summary="Microcontroller sensor node (firmware bridge protocol: self-describing, loss-free) on a serial line.",
    writable=True,
)

__getattr__ = lazy_exports(__name__, {"McuNodeConfig": "firmware_bridge.config"})
