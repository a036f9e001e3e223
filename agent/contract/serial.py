"""Serial (UART) devices: the port handle, and frame scanners.

A driver's codec supplies a *scanner* that cuts frames out of the receive buffer
(:class:`FrameScan`); the port owns the lock, the buffer, resyncs and reopening a lost port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

from agent.errors import ProtocolError

from .lazy import lazy_exports

SERIAL_BUS = "serial"
# the config mixin (a model: pydantic) is in agent.contract.serial_config, imported on first use
__getattr__ = lazy_exports(__name__, {"SerialDevice": "agent.contract.serial_config"})


class FrameScan(NamedTuple):
    """What a scanner found at the front of a receive buffer.

    - ``frame`` set: a complete, valid frame occupying the first ``consumed`` bytes.
    - ``error`` set: a complete frame that failed validation (bad checksum); drop ``consumed`` bytes.
    - neither, ``consumed > 0``: garbage before a possible frame start; drop it (resync).
    - neither, ``consumed == 0``: a partial frame (or nothing); wait for more bytes.
    """

    consumed: int
    frame: bytes | None = None
    error: ProtocolError | None = None


Scanner = Callable[[bytes | bytearray], FrameScan]


@runtime_checkable
class SerialPort(Protocol):
    """The handle ``ctx.buses.get(line)`` returns for a serial line."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def transact(self, write: bytes | None, *, read_until: Scanner | None, timeout: float,
                       accept: Callable[[bytes], bool] | None = None, flush: bool = True,
                       settle_after_error: float = 0.1) -> bytes | None:
        """Send ``write`` (if any), then return the next valid frame ``read_until`` cuts out.

        ``accept`` skips valid frames that are not the awaited reply. A bad checksum raises
        ``ProtocolError``, silence ``DeviceTimeout``, a lost port ``BusUnavailable``.
        """
        ...
