"""Plantower PMS5003 wire format: 32-byte data frames and 7-byte commands (pure functions)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agent.contract import FrameScan, ProtocolError

START = b"BM"
FRAME_LEN = 32
LENGTH_FIELD = 28  # 13 data words + checksum
COMMAND_LEN = 7

CMD_MODE = 0xE1
CMD_READ = 0xE2
CMD_SLEEP = 0xE4


class Pms5003ChecksumError(ProtocolError):
    """A complete PMS5003 frame whose checksum does not match its bytes."""


@dataclass(frozen=True, slots=True)
class Pms5003Reading:
    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0: int  # atmospheric environment
    pm2_5: int
    pm10: int
    gt0_3um: int  # particles per 0.1 L
    gt0_5um: int
    gt1_0um: int
    gt2_5um: int
    gt5_0um: int
    gt10um: int
    version: int
    error_code: int


def _sum16(data: bytes | bytearray) -> int:
    return sum(data) & 0xFFFF


def command(cmd: int, data: int = 0) -> bytes:
    """``42 4D CMD DATAH DATAL CHKH CHKL``; checksum = 16-bit sum of the first five bytes."""
    body = START + bytes((cmd & 0xFF, (data >> 8) & 0xFF, data & 0xFF))
    return body + _sum16(body).to_bytes(2, "big")


PASSIVE_MODE = command(CMD_MODE, 0)
ACTIVE_MODE = command(CMD_MODE, 1)
READ = command(CMD_READ, 0)
SLEEP = command(CMD_SLEEP, 0)
WAKE = command(CMD_SLEEP, 1)


def encode(r: Pms5003Reading) -> bytes:
    words = (r.pm1_0_cf1, r.pm2_5_cf1, r.pm10_cf1, r.pm1_0, r.pm2_5, r.pm10,
             r.gt0_3um, r.gt0_5um, r.gt1_0um, r.gt2_5um, r.gt5_0um, r.gt10um)
    body = START + struct.pack(">H12HBB", LENGTH_FIELD, *words, r.version, r.error_code)
    return body + _sum16(body).to_bytes(2, "big")


def decode(frame: bytes | bytearray) -> Pms5003Reading:
    """Decode one complete 32-byte frame; raises ProtocolError naming what is wrong."""
    if len(frame) != FRAME_LEN:
        raise ProtocolError(f"PMS5003 frame must be {FRAME_LEN} bytes, got {len(frame)}")
    if frame[:2] != START:
        raise ProtocolError(f"PMS5003 frame must start with 42 4D, got {bytes(frame[:2]).hex(' ')}")
    length = int.from_bytes(frame[2:4], "big")
    if length != LENGTH_FIELD:
        raise ProtocolError(f"PMS5003 frame length field is {length}, expected {LENGTH_FIELD}")
    want, got = _sum16(frame[:30]), int.from_bytes(frame[30:32], "big")
    if want != got:
        raise Pms5003ChecksumError(f"PMS5003 checksum mismatch: frame says {got:#06x}, bytes sum to {want:#06x}")
    _, *words, version, err = struct.unpack(">H12HBB", bytes(frame[2:30]))
    return Pms5003Reading(*words, version, err)


def scan(buf: bytes | bytearray) -> FrameScan:
    """Find the next data frame at the front of ``buf`` (see FrameScan)."""
    i = buf.find(START)
    if i < 0:
        keep = 1 if buf[-1:] == START[:1] else 0  # a lone 'B' may be the start of a frame
        return FrameScan(len(buf) - keep)
    if i > 0:
        return FrameScan(i)
    if len(buf) < 4:
        return FrameScan(0)
    if int.from_bytes(buf[2:4], "big") != LENGTH_FIELD:
        return FrameScan(1)  # not a frame start after all: resync past this 'B'
    if len(buf) < FRAME_LEN:
        return FrameScan(0)
    frame = bytes(buf[:FRAME_LEN])
    try:
        decode(frame)
    except ProtocolError as e:
        return FrameScan(1, error=e)  # skip one byte only: a real frame may start inside
    return FrameScan(FRAME_LEN, frame=frame)


def scan_command(buf: bytes | bytearray) -> FrameScan:
    """Find the next 7-byte command (simulator side)."""
    i = buf.find(START)
    if i < 0:
        keep = 1 if buf[-1:] == START[:1] else 0
        return FrameScan(len(buf) - keep)
    if i > 0:
        return FrameScan(i)
    if len(buf) < COMMAND_LEN:
        return FrameScan(0)
    cmd = bytes(buf[:COMMAND_LEN])
    if _sum16(cmd[:5]) != int.from_bytes(cmd[5:7], "big"):
        return FrameScan(1, error=Pms5003ChecksumError(f"PMS5003 command checksum mismatch: {cmd.hex(' ')}"))
    return FrameScan(COMMAND_LEN, frame=cmd)
