"""Host side of the framed serial protocol to microcontroller sensor nodes (see docs/firmware-bridge.md)."""

from agent.contract import DriverSpec

from .driver import McuNodeConfig, McuNodeDriver

SPEC = DriverSpec(
    type="mcu_node",
    config_model=McuNodeConfig,
    factory=McuNodeDriver,
    summary="Microcontroller sensor node (firmware bridge protocol: self-describing, loss-free) on a serial line.",
    writable=True,
)
