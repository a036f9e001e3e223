"""Serial line kind ``serial``: one port, one lock, a receive buffer fed by the event loop.

The port is opened non-blocking (pyserial, ``timeout=0``) and read from an event-loop reader
callback, so nothing ever blocks the loop. Frames are cut out of the buffer by a *scanner* that
the driver's codec supplies (see :class:`FrameScan`); garbage is skipped and counted, frames that
fail their checksum are counted and never returned. A port that disappears (USB adapter
unplugged, pty closed) marks the bus down; the next transaction reopens it, with backoff.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import serial

from ..contract.lazy import lazy_exports
from ..contract.serial import Scanner
from ..errors import BusUnavailable, DeviceTimeout, ProtocolError

if TYPE_CHECKING:
    from .serial_config import SerialLineConfig

log = logging.getLogger("edge_agent.bus.serial")

# the line's config model (pydantic) is in agent.bus.serial_config, imported on first use
__getattr__ = lazy_exports(__name__, {"SerialLineConfig": "agent.bus.serial_config"})


class BusState(enum.StrEnum):
    CLOSED = "closed"
    UP = "up"
    DOWN = "down"


class SerialBus:
    """A serial port owned by one line. Drivers call :meth:`transact`; the bus does the rest."""

    def __init__(self, name: str, config: SerialLineConfig):
        self.name = name
        self.config = config
        self._ser: Any = None
        self._fd: int | None = None
        self._buf = bytearray()
        self._lock = asyncio.Lock()
        self._data = asyncio.Event()
        self._state = BusState.CLOSED
        self._last_error: str | None = None
        self._lost: str | None = None  # set by the reader when the port disappears mid-wait
        self._delay = config.reopen_min
        self._next_open = 0.0
        self.counters = dict.fromkeys(
            ("frames_ok", "checksum_errors", "resyncs", "bytes_discarded", "bytes_flushed",
             "bytes_in", "bytes_out", "timeouts", "downs", "ups", "open_failures"), 0)

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> BusState:
        return self._state

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def stats(self) -> dict[str, Any]:
        return {"state": str(self._state), "port": self.config.port, "last_error": self._last_error, **self.counters}

    def _set_up(self) -> None:
        if self._state is not BusState.UP:
            if self._state is BusState.DOWN:
                log.info("serial line %s: port %s is back", self.name, self.config.port)
            self.counters["ups"] += 1
            self._state = BusState.UP
            self._last_error = None
        self._delay = self.config.reopen_min

    def _set_down(self, reason: str) -> None:
        self._last_error = reason
        if self._state is not BusState.DOWN:
            log.warning("serial line %s: port %s is down: %s", self.name, self.config.port, reason)
            self.counters["downs"] += 1
            self._state = BusState.DOWN
        self._next_open = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.config.reopen_max)

    # -- open / close --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port now; raises BusUnavailable (and schedules a reopen) if it cannot."""
        async with self._lock:
            self._next_open = 0.0
            self._ensure_open()

    def _ensure_open(self) -> None:
        if self._ser is not None:
            return
        now = time.monotonic()
        if self._state is BusState.DOWN and now < self._next_open:
            raise BusUnavailable(
                f"serial line {self.name}: port {self.config.port} is down ({self._last_error}); "
                f"next reopen in {self._next_open - now:.1f}s")
        cfg = self.config
        try:
            ser = serial.serial_for_url(
                cfg.port, baudrate=cfg.baudrate, bytesize=cfg.bytesize, parity=str(cfg.parity),
                stopbits=cfg.stopbits, timeout=0, write_timeout=1.0, exclusive=None)
            fd = ser.fileno()
        except (serial.SerialException, OSError, ValueError) as e:
            self.counters["open_failures"] += 1
            self._set_down(f"cannot open: {e}")
            raise BusUnavailable(f"serial line {self.name}: cannot open {cfg.port}: {e}") from None
        self._ser, self._fd = ser, fd
        self._buf.clear()
        self._lost = None
        asyncio.get_running_loop().add_reader(fd, self._on_readable)
        self._set_up()

    def _drop_port(self) -> None:
        ser, fd = self._ser, self._fd
        self._ser = self._fd = None
        if fd is not None:
            try:
                asyncio.get_running_loop().remove_reader(fd)
            except (RuntimeError, ValueError, OSError):
                pass
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass

    def _lose(self, reason: str) -> None:
        self._drop_port()
        self._lost = reason
        self._set_down(reason)
        self._data.set()

    async def close(self) -> None:
        async with self._lock:
            self._drop_port()
            self._state = BusState.CLOSED

    # -- I/O -----------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            chunk = self._ser.read(4096)
        except (serial.SerialException, OSError) as e:
            self._lose(f"read failed: {e}")
            return
        if not chunk:
            return
        self.counters["bytes_in"] += len(chunk)
        self._buf += chunk
        excess = len(self._buf) - self.config.max_buffer
        if excess > 0:
            del self._buf[:excess]
            self.counters["bytes_discarded"] += excess
        self._data.set()

    def _write(self, data: bytes) -> None:
        try:
            self._ser.write(data)
        except (serial.SerialException, OSError) as e:
            self._lose(f"write failed: {e}")
            raise BusUnavailable(f"serial line {self.name}: write to {self.config.port} failed: {e}") from None
        self.counters["bytes_out"] += len(data)

    def _take(self, scanner: Scanner, accept: Callable[[bytes], bool] | None) -> tuple[bytes | None, ProtocolError | None]:
        """Cut frames out of the buffer; return the first accepted frame and the last rejection."""
        error: ProtocolError | None = None
        while self._buf:
            r = scanner(self._buf)
            if r.frame is not None:
                del self._buf[:max(r.consumed, 1)]
                self.counters["frames_ok"] += 1
                if accept is None or accept(r.frame):
                    return r.frame, error
            elif r.error is not None:
                del self._buf[:max(r.consumed, 1)]
                self.counters["checksum_errors"] += 1
                self.counters["bytes_discarded"] += max(r.consumed, 1)
                error = r.error
            elif r.consumed > 0:
                del self._buf[:r.consumed]
                self.counters["resyncs"] += 1
                self.counters["bytes_discarded"] += r.consumed
            else:
                break
        return None, error

    async def transact(
        self,
        write: bytes | None,
        *,
        read_until: Scanner | None,
        timeout: float,
        accept: Callable[[bytes], bool] | None = None,
        flush: bool = True,
        settle_after_error: float = 0.1,
    ) -> bytes | None:
        """Send ``write`` (if any), then return the next valid frame ``read_until`` cuts out.

        ``flush`` drops bytes received before the request (stale data is never returned).
        ``accept`` skips valid frames that are not the awaited reply. A rejected frame (bad
        checksum) raises its ProtocolError once the line has been quiet for
        ``settle_after_error`` without a valid frame following; silence raises DeviceTimeout;
        a lost port raises BusUnavailable.
        """
        async with self._lock:
            self._ensure_open()
            if flush and self._buf:
                self.counters["bytes_flushed"] += len(self._buf)
                self._buf.clear()
            if write:
                self._write(write)
            if read_until is None:
                return None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            pending: ProtocolError | None = None
            while True:
                frame, error = self._take(read_until, accept)
                if frame is not None:
                    return frame
                pending = error or pending
                if self._lost is not None:
                    raise BusUnavailable(f"serial line {self.name}: port {self.config.port} lost: {self._lost}")
                remaining = deadline - loop.time()
                wait = remaining if pending is None else min(remaining, settle_after_error)
                self._data.clear()
                try:
                    if wait <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(self._data.wait(), wait)
                except TimeoutError:
                    if pending is not None:
                        raise pending from None
                    self.counters["timeouts"] += 1
                    raise DeviceTimeout(
                        f"serial line {self.name}: no valid frame within {timeout:g}s "
                        f"({len(self._buf)} bytes pending)") from None


def make_serial_bus(name: str, config: SerialLineConfig) -> SerialBus:
    return SerialBus(name, config)


def split_frames(scanner: Scanner, data: bytes | bytearray) -> tuple[list[bytes], list[ProtocolError], int]:
    """Cut a whole capture into (valid frames, rejected-frame errors, garbage bytes skipped)."""
    buf = bytearray(data)
    frames: list[bytes] = []
    errors: list[ProtocolError] = []
    skipped = 0
    while buf:
        r = scanner(buf)
        if r.frame is not None:
            frames.append(r.frame)
        elif r.error is not None:
            errors.append(r.error)
        elif r.consumed == 0:
            break
        else:
            skipped += r.consumed
        del buf[:max(r.consumed, 1)]
    return frames, errors, skipped
