"""Meters answering on a half-duplex line, for the metering simulators (DL/T 645, CJ/T 188).

The line is a pty (an RS-485 or M-Bus converter) or a TCP port (a DTU in transparent mode): the
same byte stream either way. A family's simulator sets ``scanner``, implements ``handle`` and
answers through :meth:`MeterLineSim.send`, which applies the line faults, queued in ``sim_faults``
or drawn at ``fault_rate``, and optionally paces the reply to a baud rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Iterable

import click

from .net import parse_hostport, run_until_interrupted
from .serial_pty import SerialDeviceSim


class Fault(enum.StrEnum):
    GARBAGE = "garbage"  # random bytes before the frame
    TRUNCATE = "truncate"  # the first part of the frame only
    BAD_CHECKSUM = "bad_checksum"  # a data byte changed, the checksum not
    ERROR_REPLY = "error_reply"  # the meter's refusal instead of the data
    SILENCE = "silence"  # no answer


class MeterLineSim(SerialDeviceSim):
    def __init__(self, *, tcp: str | None = None, wake: int = 2, pace_baud: int | None = None, **kw):
        kw.setdefault("baudrate", 2400)
        super().__init__(**kw)
        self.tcp = tcp
        self.wake = wake  # FE bytes in front of each reply (meters send 0-4)
        self.pace_baud = pace_baud  # answer only after the request and reply would have crossed an 8E1 line
        self._last_request = 0  # bytes of the request being answered (for pacing)
        self.sim_faults: list[Fault] = []
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None

    # -- TCP (a DTU): the same byte stream over a socket ---------------------------------------
    @property
    def path(self) -> str:
        return f"socket://{self.tcp}" if self.tcp else super().path

    async def start(self):
        if self.tcp is None:
            await super().start()
            return self
        host, port = self.tcp.rsplit(":", 1)
        self._server = await asyncio.start_server(self._client, host, int(port))
        if int(port) == 0:
            self.tcp = f"{host}:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        buf = bytearray()
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while buf:
                    r = self.scanner(buf)
                    if r.consumed == 0:
                        break
                    del buf[:r.consumed]
                    if r.frame is not None:
                        self.requests += 1
                        self.handle(r.frame)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            if self._writer is not None:
                self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            return
        await super().stop()

    def write_raw(self, data: bytes) -> None:
        if self.tcp is not None:
            if self._writer is not None and not self._writer.is_closing():
                self._writer.write(data)
            return
        super().write_raw(data)

    # -- answering -----------------------------------------------------------------------------
    def _fault(self) -> Fault | None:
        if self.sim_faults:
            return self.sim_faults.pop(0)
        if self.fault_rate and self.rng.random() < self.fault_rate:
            return self.rng.choice(list(Fault))
        return None

    def answer_together(self, replies: list[bytes]) -> None:
        """Every meter answers a wildcard request at once: one reply goes out as any other (faults
        applied); two or more collide and the line carries the wired-OR of their bits, as on a bus."""
        if len(replies) == 1:
            self.send(replies[0])
        else:
            self.write_raw(bytes(min(bs) for bs in zip(*replies, strict=False)))

    def send(self, frame: bytes, *, error: Callable[[], bytes] | None = None) -> None:
        """Answer with ``frame`` as the next fault makes it; ``error`` builds the refusal an
        ERROR_REPLY fault sends instead (without it the frame goes out unchanged)."""
        fault = self._fault()
        if fault is Fault.SILENCE:
            return
        if fault is Fault.ERROR_REPLY and error is not None:
            frame = error()
        data = bytearray(frame)
        if fault is Fault.GARBAGE:
            data[:0] = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
        elif fault is Fault.TRUNCATE:
            data = data[: self.rng.randrange(self.wake + 1, len(frame) - 1)]
        elif fault is Fault.BAD_CHECKSUM:
            data[-3] ^= 0x01  # the last data byte
        if self.pace_baud:
            wire = (self._last_request + len(data)) * 11 / self.pace_baud
            asyncio.get_running_loop().call_later(wire, self.write_raw, bytes(data))
        else:
            self.write_raw(bytes(data))
        self.frames_sent += 1


# -- the simulators' command line ------------------------------------------------------------------
def check_addresses(addresses: Iterable[str], parse: Callable[[str], object]) -> None:
    """Each ``--address`` through the family's parser; a usage error naming the option otherwise."""
    for a in addresses:
        try:
            parse(a)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--address") from None


def tcp_option(tcp: str | None) -> str | None:
    """``--tcp HOST:PORT`` checked and completed (``:PORT`` listens on 127.0.0.1)."""
    if tcp is None:
        return None
    host, port = parse_hostport(tcp, "--tcp")
    return f"{host}:{port}"


def serve_line(sim: MeterLineSim, banner: str, devices: Iterable[str]) -> None:
    """Run ``sim`` until Ctrl-C, after printing where it listens and the config blocks that read it:
    the line's ``[lines.meters]`` and one ``[[devices]]`` block per entry of ``devices``."""

    async def main() -> None:
        await sim.start()
        where = sim.path
        click.echo(f"{banner} on {where}  (Ctrl-C stops)")
        parity = '"N"  # a pty refuses even parity; real meters: "E"' if sim.tcp is None and sim.port is None else '"E"'
        click.echo(f'[lines.meters]\ntype = "serial"\nport = "{where}"\nbaudrate = 2400\nparity = {parity}\n')
        for block in devices:
            click.echo(block)
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            await sim.stop()

    run_until_interrupted(main)
