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
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from agent.bus.i2c import I2cBus
from agent.contract import I2C_BUS, I2cTransport, LineConfig, LineKind

EMULATORS_GROUP = "edge_agent.i2c_emulators"
Emulator = Callable[..., I2cTransport]


def emulator_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=EMULATORS_GROUP)})


def load_emulator(chip: str) -> Emulator:
    for ep in entry_points(group=EMULATORS_GROUP, name=chip):
        return ep.load()
    raise KeyError(f"no emulated I2C chip named {chip!r} (installed: {', '.join(emulator_names()) or 'none'})")


class I2cSimLineConfig(LineConfig):
    """An emulated I2C bus with one emulated chip on it, for demos and training."""

    BUS: ClassVar[str | None] = I2C_BUS

    type: Literal["i2c_sim"]
    chip: str = Field(description="The emulated chip, by its registered name (e.g. bme680).")
    address: int | None = Field(None, ge=0x03, le=0x77, description="The chip's address; default: the emulator's.")
    vary: bool = Field(True, description="Let the emulated readings drift.")

    @field_validator("chip")
    @classmethod
    def _installed(cls, v: str) -> str:
        names = emulator_names()
        if v not in names:
            raise ValueError(f"no emulated I2C chip named {v!r} (installed: {', '.join(names) or 'none'})")
        return v


def make_i2c_sim_bus(name: str, config: I2cSimLineConfig) -> I2cBus:
    def transport() -> Any:
        kw: dict[str, Any] = {"vary": config.vary}
        if config.address is not None:
            kw["address"] = config.address
        return load_emulator(config.chip)(**kw)

    return I2cBus(name, config, transport_factory=transport)


I2C_SIM_LINE = LineKind(I2cSimLineConfig, make_i2c_sim_bus,
                        "An emulated I2C bus holding one emulated chip (demos, training)")
