"""I2C devices: the bus handle.

The transport handed to device code is the CircuitPython ``busio.I2C`` duck type
(:class:`I2cTransport`), so CircuitPython device libraries work unchanged. Transfers block, so
:meth:`I2cLine.run` runs device code in a worker thread, alone on the line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from .lazy import lazy_exports

I2C_BUS = "i2c"
# the config mixin (a model: pydantic) is in agent.contract.i2c_config, imported on first use
__getattr__ = lazy_exports(__name__, {"I2cDevice": "agent.contract.i2c_config"})
T = TypeVar("T")


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
