"""The device end of a virtual serial cable, for serial device simulators.

A :class:`SerialDeviceSim` owns a pty pair (``os.openpty``): the agent opens the slave path, the
simulator reads requests from and writes frames to the master. Optionally a stable symlink (e.g.
``/tmp/ttyUSB0``) points at the current slave, so "unplug" (close the pty) and "replug" (a new
pty, the link moved) look to the agent like a USB adapter coming and going. With ``port`` the
simulator speaks over a real serial port instead (a null-modem cable to the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import random
import tty
from collections import deque
from pathlib import Path

import serial

from agent.contract.serial import Scanner


class Fault(enum.StrEnum):
    GARBAGE = "garbage"  # random bytes before the frame
    TRUNCATE = "truncate"  # only the first part of the frame
    BAD_CHECKSUM = "bad_checksum"  # a data byte flipped, checksum left as it was
    DROP = "drop"  # no frame at all


class SerialDeviceSim:
    """Base class: subclasses set ``scanner`` (for requests) and implement :meth:`handle`."""

    scanner: Scanner

    def __init__(self, *, link: str | Path | None = None, port: str | None = None, baudrate: int = 9600,
                 fault_rate: float = 0.0, seed: int | None = None):
        self.link = Path(link) if link else None
        self.port = port
        self.baudrate = baudrate
        self.fault_rate = fault_rate
        self.faults: deque[Fault] = deque()
        self.rng = random.Random(seed)
        self.requests = 0
        self.frames_sent = 0
        self._fd: int | None = None
        self._slave: int | None = None
        self._ser: serial.Serial | None = None
        self._rx = bytearray()
        self._slave_path = ""
        self._stream_task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """What the agent should open: the stable link, the slave pty, or the real port."""
        if self.port:
            return self.port
        return str(self.link) if self.link else self._slave_path

    @property
    def plugged(self) -> bool:
        return self._fd is not None

    async def start(self) -> SerialDeviceSim:
        self._plug()
        self._stream_task = asyncio.create_task(self.stream())
        return self

    async def stream(self) -> None:
        """Unsolicited output (active-mode sensors override this); runs from start() to stop()."""

    def _plug(self) -> None:
        if self.port:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=0)
            self._fd = self._ser.fileno()
        else:
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline, before the agent opens it
            os.set_blocking(master, False)
            self._fd, self._slave = master, slave
            self._slave_path = os.ttyname(slave)
            if self.link:
                tmp = self.link.with_name(self.link.name + ".new")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(self._slave_path)
                os.replace(tmp, self.link)
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)

    def unplug(self) -> None:
        """Close the device end: the agent's next read or write fails as on a pulled USB plug."""
        if self._fd is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(self._fd)
        if self._ser is not None:
            self._ser.close()
            self._ser = None
        else:
            os.close(self._fd)
            if self._slave is not None:
                os.close(self._slave)
            if self.link:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
        self._fd = self._slave = None
        self._rx.clear()

    async def replug(self) -> None:
        self.unplug()
        self._plug()

    async def stop(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
            self._stream_task = None
        self.unplug()

    # -- wire ----------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096) if self._ser is None else self._ser.read(4096)
        except BlockingIOError:
            return
        except OSError:
            return
        self._rx += chunk
        while self._rx:
            r = self.scanner(self._rx)
            if r.consumed == 0:
                break
            del self._rx[:r.consumed]
            if r.frame is not None:
                self.requests += 1
                self.handle(r.frame)

    def handle(self, request: bytes) -> None:
        raise NotImplementedError

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (garbage injection)."""
        if self._fd is None:
            return
        if self._ser is not None:
            self._ser.write(data)
        else:
            os.write(self._fd, data)

    def send(self, frame: bytes) -> None:
        """Send one frame, applying the next queued fault (or a random one at ``fault_rate``)."""
        fault = self.faults.popleft() if self.faults else None
        if fault is None and self.fault_rate and self.rng.random() < self.fault_rate:
            fault = self.rng.choice(list(Fault))
        data = bytearray(frame)
        if fault is Fault.DROP:
            return
        if fault is Fault.GARBAGE:
            data[:0] = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
        elif fault is Fault.TRUNCATE:
            data = data[: self.rng.randrange(1, len(frame))]
        elif fault is Fault.BAD_CHECKSUM:
            data[4] ^= 0x01  # a data byte every checksum here covers
        self.write_raw(bytes(data))
        self.frames_sent += 1


def serve_forever(sim: SerialDeviceSim, *, describe: str, device_type: str | None = None) -> None:
    """Run a simulator until Ctrl-C, telling the technician which port to configure (with
    ready-to-paste config blocks when ``device_type`` names the driver that reads it)."""
    import click

    async def main() -> None:
        await sim.start()
        click.echo(f"{describe} on {sim.path}  (configure a serial line with port = \"{sim.path}\"; Ctrl-C stops)")
        if device_type:
            from agent.simkit.snippets import banner, serial_line, snippet_for_device

            click.echo(banner(snippet_for_device(*serial_line(sim.path), device_type, {"type": device_type})))
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    except OSError as e:  # serial.SerialException is an OSError: name the port, no traceback
        where = sim.port or sim.link or "a pty"
        raise click.ClickException(f"cannot open {where}: {os.strerror(e.errno) if e.errno else e}") from None


def _check_link(ctx, param, value: str | None) -> str | None:
    """The symlink's directory must exist (the pty is created, the directory is not)."""
    import click

    if value is not None and not Path(value).parent.is_dir():
        raise click.BadParameter(f"directory {str(Path(value).parent)!r} does not exist", ctx=ctx, param=param)
    return value


def sim_options(f):
    """The click options every serial simulator shares."""
    import click

    f = click.option("--seed", type=int, default=None, help="Random seed for values and faults.")(f)
    f = click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0,
                     help="Fraction of frames sent with a fault (garbage, truncation, bad checksum, drop).")(f)
    f = click.option("--port", default=None, help="Speak over this real serial port instead of a pty.")(f)
    f = click.option("--link", type=click.Path(dir_okay=False), default=None, callback=_check_link,
                     help="Also make this stable symlink (e.g. /tmp/ttyUSB0) point at the pty.")(f)
    return f
