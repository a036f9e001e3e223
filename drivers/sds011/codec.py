"""Nova SDS011 wire format: 10-byte data/reply frames and 19-byte commands (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import FrameScan, ProtocolError

HEAD, TAIL = 0xAA, 0xAB
DATA, REPLY, COMMAND = 0xC0, 0xC5, 0xB4
FRAME_LEN, COMMAND_LEN = 10, 19
ALL_SENSORS = 0xFFFF

CMD_REPORT_MODE = 0x02
CMD_QUERY = 0x04
CMD_SLEEP = 0x06
CMD_FIRMWARE = 0x07
CMD_PERIOD = 0x08


class Sds011ChecksumError(ProtocolError):
    """A complete SDS011 frame whose checksum does not match its data bytes."""


@dataclass(frozen=True, slots=True)
class Sds011Frame:
    kind: int  # DATA (0xC0) or REPLY (0xC5)
    payload: bytes  # bytes 2..5 (for DATA: PM2.5 lo/hi, PM10 lo/hi; for REPLY: cmd and data)
    device_id: int

    @property
    def pm2_5(self) -> float:
        return int.from_bytes(self.payload[0:2], "little") / 10

    @property
    def pm10(self) -> float:
        return int.from_bytes(self.payload[2:4], "little") / 10


def command(cmd: int, data: bytes = b"", device_id: int = ALL_SENSORS) -> bytes:
    """``AA B4 CMD D1..D12 ID1 ID2 CS AB`` with CS = sum(bytes[2:17]) & 0xFF."""
    if len(data) > 12:
        raise ValueError("SDS011 command data is at most 12 bytes")
    body = bytes((cmd,)) + data.ljust(12, b"\0") + device_id.to_bytes(2, "big")
    return bytes((HEAD, COMMAND)) + body + bytes((sum(body) & 0xFF, TAIL))


def query(device_id: int = ALL_SENSORS) -> bytes:
    return command(CMD_QUERY, b"", device_id)


def set_query_mode(device_id: int = ALL_SENSORS) -> bytes:
    return command(CMD_REPORT_MODE, b"\x01\x01", device_id)


def set_active_mode(device_id: int = ALL_SENSORS) -> bytes:
    return command(CMD_REPORT_MODE, b"\x01\x00", device_id)


def sleep(device_id: int = ALL_SENSORS) -> bytes:
    return command(CMD_SLEEP, b"\x01\x00", device_id)


def work(device_id: int = ALL_SENSORS) -> bytes:
    return command(CMD_SLEEP, b"\x01\x01", device_id)


def encode(kind: int, payload: bytes, device_id: int) -> bytes:
    body = payload[:4].ljust(4, b"\0") + device_id.to_bytes(2, "big")
    return bytes((HEAD, kind)) + body + bytes((sum(body) & 0xFF, TAIL))


def encode_data(pm2_5: float, pm10: float, device_id: int) -> bytes:
    raw = round(pm2_5 * 10).to_bytes(2, "little") + round(pm10 * 10).to_bytes(2, "little")
    return encode(DATA, raw, device_id)


def decode(frame: bytes | bytearray) -> Sds011Frame:
    """Decode one complete 10-byte frame; raises ProtocolError naming what is wrong."""
    if len(frame) != FRAME_LEN:
        raise ProtocolError(f"SDS011 frame must be {FRAME_LEN} bytes, got {len(frame)}")
    if frame[0] != HEAD or frame[9] != TAIL:
        raise ProtocolError(f"SDS011 frame must be AA .. AB, got {bytes(frame).hex(' ')}")
    if frame[1] not in (DATA, REPLY):
        raise ProtocolError(f"SDS011 frame kind {frame[1]:#04x} is neither data (C0) nor reply (C5)")
    want = sum(frame[2:8]) & 0xFF
    if want != frame[8]:
        raise Sds011ChecksumError(f"SDS011 checksum mismatch: frame says {frame[8]:#04x}, data sums to {want:#04x}")
    return Sds011Frame(frame[1], bytes(frame[2:6]), int.from_bytes(frame[6:8], "big"))


def _scan(buf: bytes | bytearray, kinds: tuple[int, ...], length: int) -> FrameScan:
    i = buf.find(HEAD)
    if i < 0:
        return FrameScan(len(buf))
    if i > 0:
        return FrameScan(i)
    if len(buf) < 2:
        return FrameScan(0)
    if buf[1] not in kinds:
        return FrameScan(1)
    if len(buf) < length:
        return FrameScan(0)
    if buf[length - 1] != TAIL:
        return FrameScan(1)  # not a frame after all (or a truncated one): resync
    frame = bytes(buf[:length])
    if sum(frame[2:length - 2]) & 0xFF != frame[length - 2]:
        return FrameScan(1, error=Sds011ChecksumError(f"SDS011 checksum mismatch in {frame.hex(' ')}"))
    return FrameScan(length, frame=frame)


def scan(buf: bytes | bytearray) -> FrameScan:
    """Find the next data or reply frame (agent side)."""
    return _scan(buf, (DATA, REPLY), FRAME_LEN)


def scan_command(buf: bytes | bytearray) -> FrameScan:
    """Find the next 19-byte command (simulator side)."""
    return _scan(buf, (COMMAND,), COMMAND_LEN)
