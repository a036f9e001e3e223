"""Modbus devices: the calls a driver may make on the line; the config mixin (``line`` + ``unit``),
:class:`ModbusDevice`, is in :mod:`agent.contract.modbus_config` (re-exported here, imported on first use).

The line owns the lock, the inter-frame gap, reconnects and per-unit backoff; a driver only names
its unit. Register values are decoded with :mod:`agent.contract.modbus_values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .lazy import lazy_exports

MODBUS_BUS = "modbus"
__getattr__ = lazy_exports(__name__, {"ModbusDevice": "agent.contract.modbus_config"})


@runtime_checkable
class ModbusLine(Protocol):
    """The handle ``ctx.buses.get(line)`` returns for a Modbus line. Errors are the contract's
    ``DeviceTimeout``, ``DeviceException`` (with the exception code), ``ProtocolError`` and
    ``BusUnavailable``."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def read_registers(self, unit: int, *, fc: int, address: int, count: int,
                             timeout: float | None = None) -> list[int]:
        """FC03 (holding) or FC04 (input) registers."""
        ...

    async def read_register_blocks(self, unit: int, blocks: Sequence[tuple[int, int, int]], *,
                                   timeout: float | None = None) -> list[bytes]:
        """Several FC03/FC04 reads ``(fc, address, count)`` of one unit; each block's registers as
        big-endian bytes (2 per register), ready for a numpy view."""
        ...

    async def read_bits(self, unit: int, *, fc: int, address: int, count: int,
                        timeout: float | None = None) -> list[bool]:
        """FC01 (coils) or FC02 (discrete inputs)."""
        ...

    async def write_registers(self, unit: int, *, address: int, values: Sequence[int],
                              timeout: float | None = None, single: bool = False) -> None:
        """FC16 (or FC06 with ``single``); unit 0 broadcasts."""
        ...

    async def write_coil(self, unit: int, *, address: int, value: bool, timeout: float | None = None) -> None: ...

    @property
    def bits_per_char(self) -> int:
        """Bits per character on the serial side (0 for Modbus TCP)."""
        ...

    @property
    def baudrate(self) -> int:
        """Baud rate of the serial side (0 for Modbus TCP)."""
        ...

    def unit_available(self, unit: int) -> float:
        """Seconds until ``unit`` will be tried again after failures (0 = now)."""
        ...

    def stats(self) -> dict[str, Any]: ...
