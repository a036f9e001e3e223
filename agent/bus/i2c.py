"""I2C line kind ``i2c`` (Linux /dev/i2c-N), and the I2C bus any transport can sit behind.

The bus object handed to device libraries is the CircuitPython ``busio.I2C`` duck type
(``try_lock``/``unlock``/``writeto``/``readfrom_into``/``writeto_then_readfrom``), implemented
directly on the Linux i2c-dev interface, so no board detection (Blinka) is needed and it works the
same on every Pi model; an emulated chip (``agent.simkit``) can stand in for the transport. I2C
transfers block, so :meth:`I2cBus.run` executes device code in a worker thread under the line's
lock; the event loop never waits on the wire.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..contract.lazy import lazy_exports
from ..errors import BusUnavailable

if TYPE_CHECKING:
    from ..contract.config import LineConfig
    from .i2c_config import I2cLineConfig

I2C_SLAVE = 0x0703  # linux/i2c-dev.h: set the target address for read()/write()
T = TypeVar("T")

# the line's config model (pydantic) is in agent.bus.i2c_config, imported on first use
__getattr__ = lazy_exports(__name__, {"I2cLineConfig": "agent.bus.i2c_config"})


class LinuxI2C:
    """``busio.I2C`` duck type over /dev/i2c-N (ioctl I2C_SLAVE, then plain read/write)."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._lock = threading.Lock()
        self._addr: int | None = None

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._lock.release()

    def _select(self, address: int) -> None:
        if address != self._addr:
            fcntl.ioctl(self._fd, I2C_SLAVE, address)
            self._addr = address

    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        self._select(address)
        os.write(self._fd, bytes(buffer[start:end]))

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        self._select(address)
        end = len(buffer) if end is None else end
        data = os.read(self._fd, end - start)
        buffer[start:start + len(data)] = data

    def writeto_then_readfrom(self, address: int, out_buffer, in_buffer, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0, in_end: int | None = None) -> None:
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)

    def scan(self) -> list[int]:
        found = []
        for addr in range(0x03, 0x78):
            try:
                self.readfrom_into(addr, bytearray(1))
                found.append(addr)
            except OSError:
                pass
        return found

    def deinit(self) -> None:
        os.close(self._fd)


class I2cBus:
    """One I2C line: owns the transport, serialises access, runs blocking transfers in a thread."""

    def __init__(self, name: str, config: LineConfig, *, transport: Any = None,
                 transport_factory: Callable[[], Any] | None = None):
        self.name = name
        self.config = config
        self.transport = transport
        self._factory = transport_factory
        self._lock = asyncio.Lock()
        self.transfers = 0
        self.errors = 0

    def _open_transport(self) -> Any:
        if self._factory is not None:
            return self._factory()
        path = f"/dev/i2c-{getattr(self.config, 'bus', 1)}"  # (an i2c line's, model or plain twin)
        if not Path(path).exists():
            raise BusUnavailable(f"i2c line {self.name}: no I2C bus {path} on this machine "
                                 "(on a Raspberry Pi enable it: raspi-config nonint do_i2c 0)")
        try:
            return LinuxI2C(path)
        except OSError as e:
            raise BusUnavailable(f"i2c line {self.name}: cannot open {path}: {e.strerror}") from None

    async def open(self) -> None:
        async with self._lock:
            if self.transport is None:
                self.transport = await asyncio.to_thread(self._open_transport)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(transport, *args)`` in a worker thread, alone on the line."""
        async with self._lock:
            if self.transport is None:
                self.transport = await asyncio.to_thread(self._open_transport)
            self.transfers += 1
            try:
                return await asyncio.to_thread(fn, self.transport, *args)
            except Exception:
                self.errors += 1
                raise

    def stats(self) -> dict[str, Any]:
        return {"transfers": self.transfers, "errors": self.errors, "open": self.transport is not None}

    async def close(self) -> None:
        async with self._lock:
            t, self.transport = self.transport, None
            if t is not None and hasattr(t, "deinit"):
                await asyncio.to_thread(t.deinit)


def make_i2c_bus(name: str, config: I2cLineConfig) -> I2cBus:
    return I2cBus(name, config)

