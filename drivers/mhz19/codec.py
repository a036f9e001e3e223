"""Winsen MH-Z19B wire format: 9-byte requests and responses (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import FrameScan, ProtocolError

START = 0xFF
SENSOR = 0x01
FRAME_LEN = 9

CMD_READ = 0x86
CMD_ABC = 0x79
CMD_ZERO = 0x87
CMD_SPAN = 0x88
CMD_RANGE = 0x99
REPLY_COMMANDS = frozenset({CMD_READ, CMD_ABC, CMD_ZERO, CMD_SPAN, CMD_RANGE})


class Mhz19ChecksumError(ProtocolError):
    """A complete MH-Z19 frame whose checksum does not match its bytes."""


@dataclass(frozen=True, slots=True)
class Mhz19Reading:
    co2_ppm: int
    temperature_c: int  # undocumented: byte 4 - 40
    status: int


def checksum(frame: bytes | bytearray) -> int:
    """``(0xFF - (sum(bytes[1..7]) & 0xFF) + 1) & 0xFF``."""
    return (0xFF - (sum(frame[1:8]) & 0xFF) + 1) & 0xFF


def _frame(first: int, second: int, data: bytes) -> bytes:
    body = bytes((START, first, second)) + data.ljust(5, b"\0")[:5]
    return body + bytes((checksum(body),))


def request(cmd: int, data: bytes = b"") -> bytes:
    return _frame(SENSOR, cmd, data)


READ = request(CMD_READ)
ABC_ON = request(CMD_ABC, b"\xa0")
ABC_OFF = request(CMD_ABC, b"\x00")
ZERO_CALIBRATION = request(CMD_ZERO)


def set_range(ppm: int) -> bytes:
    return request(CMD_RANGE, b"\0\0\0" + ppm.to_bytes(2, "big"))


def span_calibration(ppm: int) -> bytes:
    return request(CMD_SPAN, ppm.to_bytes(2, "big"))


def encode_reading(r: Mhz19Reading) -> bytes:
    return _frame(CMD_READ, (r.co2_ppm >> 8) & 0xFF,
                  bytes((r.co2_ppm & 0xFF, (r.temperature_c + 40) & 0xFF, r.status & 0xFF)))


def encode_reply(cmd: int, data: bytes = b"") -> bytes:
    return _frame(cmd, data[0] if data else 0, data[1:])


def decode_reading(frame: bytes | bytearray) -> Mhz19Reading:
    """Decode a complete read reply; raises ProtocolError naming what is wrong."""
    if len(frame) != FRAME_LEN:
        raise ProtocolError(f"MH-Z19 frame must be {FRAME_LEN} bytes, got {len(frame)}")
    if frame[0] != START or frame[1] != CMD_READ:
        raise ProtocolError(f"MH-Z19 read reply must start with FF 86, got {bytes(frame[:2]).hex(' ')}")
    if checksum(frame) != frame[8]:
        raise Mhz19ChecksumError(f"MH-Z19 checksum mismatch: frame says {frame[8]:#04x}, expected {checksum(frame):#04x}")
    return Mhz19Reading(frame[2] << 8 | frame[3], frame[4] - 40, frame[5])


def _scan(buf: bytes | bytearray, accept_second) -> FrameScan:
    i = buf.find(START)
    if i < 0:
        return FrameScan(len(buf))
    if i > 0:
        return FrameScan(i)
    if len(buf) < 2:
        return FrameScan(0)
    if not accept_second(buf[1]):
        return FrameScan(1)
    if len(buf) < FRAME_LEN:
        return FrameScan(0)
    frame = bytes(buf[:FRAME_LEN])
    if checksum(frame) != frame[8]:
        return FrameScan(1, error=Mhz19ChecksumError(f"MH-Z19 checksum mismatch in {frame.hex(' ')}"))
    return FrameScan(FRAME_LEN, frame=frame)


def scan(buf: bytes | bytearray) -> FrameScan:
    """Find the next sensor reply (agent side): FF, a known command, 6 bytes, checksum."""
    return _scan(buf, REPLY_COMMANDS.__contains__)


def scan_request(buf: bytes | bytearray) -> FrameScan:
    """Find the next request (simulator side): FF 01 CMD ..."""
    return _scan(buf, SENSOR.__eq__)
