"""The device's protocol: the request ``READ\\r\\n``, the reply ``T=21.50;H=45.2\\r\\n``."""

from __future__ import annotations

import re

from agent.contract import FrameScan, ProtocolError

READ = b"READ\r\n"
MAX_LINE = 64
REPLY = re.compile(rb"T=(-?\d+(?:\.\d+)?);H=(\d+(?:\.\d+)?)\r\n")
ALARM = re.compile(rb"ALARM=(-?\d+(?:\.\d+)?)\r\n")
SET_ALARM = re.compile(rb"SET ALARM=(-?\d+(?:\.\d+)?)\r\n")


def scan(buf: bytes | bytearray) -> FrameScan:
    """Cut one line out of the receive buffer; a line that is not a reply is a ProtocolError."""
    end = buf.find(b"\n")
    if end < 0:
        return FrameScan(len(buf) if len(buf) > MAX_LINE else 0)  # too long without a newline: garbage
    line = bytes(buf[: end + 1])
    if REPLY.fullmatch(line) is None and ALARM.fullmatch(line) is None:
        return FrameScan(end + 1, error=ProtocolError(f"not a thermometer reply: {line!r}"))
    return FrameScan(end + 1, frame=line)


def decode(frame: bytes) -> tuple[float, float]:
    m = REPLY.fullmatch(frame)
    if m is None:
        raise ProtocolError(f"not a thermometer reply: {frame!r}")
    return float(m[1]), float(m[2])


def encode(temperature: float, humidity: float) -> bytes:
    return f"T={temperature:.2f};H={humidity:.1f}\r\n".encode()


def set_alarm(threshold: float) -> bytes:
    return f"SET ALARM={threshold:.2f}\r\n".encode()


def decode_alarm(frame: bytes) -> float:
    m = ALARM.fullmatch(frame)
    if m is None:
        raise ProtocolError(f"not an alarm confirmation: {frame!r}")
    return float(m[1])


def encode_alarm(threshold: float) -> bytes:
    return f"ALARM={threshold:.2f}\r\n".encode()
