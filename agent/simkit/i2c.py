"""The ``i2c_sim`` line kind: an I2C line whose transport is an emulated chip.

Chip emulators register by name in the ``edge_agent.i2c_emulators`` entry-point group (a driver
package registers its chip's emulator next to its simulator). An emulator is a callable
``(address=..., vary=...)`` returning a ``busio.I2C``-compatible object
(:class:`agent.contract.I2cTransport`); the line builds it when first opened, so the transport
layer never knows which chips exist.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from agent.bus.i2c import I2cBus
from agent.contract.i2c import I2cTransport
from agent.contract.lazy import lazy_exports
from agent.contract.lines import LineKind

if TYPE_CHECKING:
    from .i2c_config import I2cSimLineConfig

EMULATORS_GROUP = "edge_agent.i2c_emulators"
Emulator = Callable[..., I2cTransport]

# the line's config model (pydantic) is in agent.simkit.i2c_config, imported on first use
__getattr__ = lazy_exports(__name__, {"I2cSimLineConfig": "agent.simkit.i2c_config"})


def emulator_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=EMULATORS_GROUP)})


def load_emulator(chip: str) -> Emulator:
    for ep in entry_points(group=EMULATORS_GROUP, name=chip):
        return ep.load()
    raise KeyError(f"no emulated I2C chip named {chip!r} (installed: {', '.join(emulator_names()) or 'none'})")


def make_i2c_sim_bus(name: str, config: I2cSimLineConfig) -> I2cBus:
    def transport() -> Any:
        kw: dict[str, Any] = {"vary": config.vary}
        if config.address is not None:
            kw["address"] = config.address
        return load_emulator(config.chip)(**kw)

    return I2cBus(name, config, transport_factory=transport)


I2C_SIM_LINE = LineKind("agent.simkit.i2c_config:I2cSimLineConfig", make_i2c_sim_bus,
                        "An emulated I2C bus holding one emulated chip (demos, training)")
