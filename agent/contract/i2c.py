"""I2C devices: the config mixin (``line`` + ``address``) and the bus handle.

The transport handed to device code is the CircuitPython ``busio.I2C`` duck type
(:class:`I2cTransport`), so CircuitPython device libraries work unchanged. Transfers block, so
:meth:`I2cLine.run` runs device code in a worker thread, alone on the line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import Field

from .config import LineDevice

I2C_BUS = "i2c"
T = TypeVar("T")


class I2cDevice(LineDevice):
    """A device on an I2C line: ``line`` + its 7-bit ``address``."""

    BUS: ClassVar[str | None] = I2C_BUS

    line: str = Field(description="Name of an I2C line (`i2c`, or `i2c_sim` for an emulated chip).")
    address: int = Field(ge=0x03, le=0x77, description="7-bit I2C address.")


class I2cTransport(Protocol):
    """The ``busio.I2C`` duck type: what a real bus and an emulated chip both offer."""

    def try_lock(self) -> bool: ...
    def unlock(self) -> None: ...
    def writeto(self, address: int, buffer: Any, *, start: int = 0, end: int | None = None) -> None: ...
    def readfrom_into(self, address: int, buffer: Any, *, start: int = 0, end: int | None = None) -> None: ...
    def writeto_then_readfrom(self, address: int, out_buffer: Any, in_buffer: Any, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0, in_end: int | None = None) -> None: ...


@runtime_checkable
class I2cLine(Protocol):
    """The handle ``ctx.buses.get(line)`` returns for an I2C line."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(transport, *args)`` in a worker thread, alone on the line."""
        ...
