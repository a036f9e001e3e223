"""Framing of the firmware bridge protocol: COBS, CRC-16/CCITT-FALSE and the 0x00 delimiter.

A frame on the wire is ``COBS(body + crc16_le(body)) + b"\\x00"``. The body is at most
:data:`MAX_BODY` bytes, so an encoded frame (delimiter included) is at most :data:`MAX_WIRE` bytes.
A receiver resynchronises at the next 0x00: whatever was wrong with the bytes before it is dropped.
"""

from __future__ import annotations

from agent.contract import FrameScan, ProtocolError

MAX_BODY = 250  # header + payload, CRC excluded
MAX_COBS = MAX_BODY + 2 + 1  # COBS adds one byte per 254 (at most one here)
MAX_WIRE = MAX_COBS + 1  # with the 0x00 delimiter


class FrameError(ProtocolError):
    """A frame that cannot be accepted: bad COBS, bad CRC, bad length or an unknown layout."""


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes | bytearray) -> bytes:
    out = bytearray(b"\x00")
    code_at, code = 0, 1
    for i, b in enumerate(data):
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF and i + 1 < len(data):  # a full block; a new one only if input follows
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes | bytearray) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("COBS: zero byte inside a frame")
        end = i + code
        if end > n:
            raise FrameError(f"COBS: block of {code - 1} bytes runs past the frame end ({n} bytes)")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError("COBS: zero byte inside a frame")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def wrap(body: bytes) -> bytes:
    """Body -> wire bytes (CRC appended, COBS-encoded, 0x00 delimiter)."""
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body of {len(body)} bytes exceeds the maximum of {MAX_BODY}")
    crc = crc16(body)
    return cobs_encode(body + bytes((crc & 0xFF, crc >> 8))) + b"\x00"


def unwrap(frame: bytes | bytearray) -> bytes:
    """Wire bytes of one frame (with or without the trailing 0x00) -> body; raises FrameError."""
    if frame[-1:] == b"\x00":
        frame = frame[:-1]
    if not frame:
        raise FrameError("empty frame")
    if len(frame) > MAX_COBS:
        raise FrameError(f"frame of {len(frame)} bytes exceeds the maximum of {MAX_COBS}")
    raw = cobs_decode(frame)
    if len(raw) < 3:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a header and CRC")
    body, got = raw[:-2], raw[-2] | raw[-1] << 8
    want = crc16(body)
    if got != want:
        raise FrameError(f"CRC mismatch: frame says {got:04x}, body gives {want:04x}")
    return body


def scan(buf: bytes | bytearray) -> FrameScan:
    """Scanner for :class:`agent.bus.serial_port.SerialBus`: one delimited frame at a time."""
    end = buf.find(0)
    if end < 0:
        # no delimiter yet: wait, unless more bytes than any frame can hold (then resync)
        return FrameScan(len(buf) - MAX_COBS) if len(buf) > MAX_COBS else FrameScan(0)
    if end == 0:
        return FrameScan(1)  # an empty frame: a lone delimiter (line idle/resync) is not an error
    frame = bytes(buf[:end + 1])
    try:
        unwrap(frame)
    except FrameError as e:
        return FrameScan(end + 1, error=e)
    return FrameScan(end + 1, frame=frame)


def scan_all(buf: bytes | bytearray) -> FrameScan:
    """Scanner that takes every complete frame in the buffer at once (split with :func:`split`).

    Lets a driver drain unsolicited frames with one bus transaction; validation happens later.
    """
    end = bytes(buf).rfind(b"\x00")
    if end < 0:
        return FrameScan(len(buf) - MAX_COBS) if len(buf) > MAX_COBS else FrameScan(0)
    return FrameScan(end + 1, frame=bytes(buf[:end + 1]))


def split(data: bytes | bytearray) -> list[bytes]:
    """Cut delimited wire bytes into frames (each ending in 0x00); empty frames are skipped."""
    return [p + b"\x00" for p in bytes(data).split(b"\x00")[:-1] if p]
