"""The frame skeleton DL/T 645 shares with CJ/T 188: ``[FE…] 68 [T] A… [68] C L DATA CS 16``.

A :class:`Layout` says what sits between the start byte and the control byte (CJ/T 188: a meter
type byte and a 7-byte address; DL/T 645: a 6-byte address and a second 68) and whether the data
bytes travel with +33H added. :func:`scan` hunts for a frame start (the wake-up ``FE`` bytes and any
garbage before it are dropped), checks the length, the end byte and the checksum (sum mod 256 from
the first 68 to the end of the data). An :class:`Expect` tells it what the awaited reply's header
looks like, so a reply still arriving is not given up for a frame its own data happens to hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import FrameScan, ProtocolError

START = 0x68
END = 0x16
WAKE = 0xFE


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    address_len: int
    type_byte: bool = False  # CJ/T 188: the meter type T follows the first 68
    second_start: bool = True  # DL/T 645: 68 again after the address
    data_offset: int = 0x33  # added to every data byte on the wire (0: none)
    max_data: int = 200

    @property
    def header_len(self) -> int:
        """Bytes from the first 68 to L inclusive."""
        return 1 + self.type_byte + self.address_len + self.second_start + 2


@dataclass(frozen=True, slots=True)
class Frame:
    address: bytes  # as on the wire: low byte first
    control: int
    data: bytes  # with the +33H removed
    meter_type: int | None = None


REPLY = 0x80  # control bit D7: set in every meter's answer
ERROR = 0x40  # control bit D6: set with REPLY when the meter refuses


@dataclass(frozen=True, slots=True)
class Expect:
    """The header of the awaited reply: from ``address``, a reply (D7) to one of ``functions``
    (``control & mask``) with at least ``min_data`` data bytes unless it is a refusal (D6)."""

    address: bytes
    functions: frozenset[int]
    mask: int
    min_data: int = 0

    def fits(self, layout: Layout, buf: bytes | bytearray) -> bool:
        """``buf`` starts with a whole header that can be the awaited reply's."""
        h = layout.header_len
        if len(buf) < h or (layout.second_start and buf[h - 3] != START):
            return False
        a = 1 + layout.type_byte
        control, length = buf[h - 2], buf[h - 1]
        return (bytes(buf[a:a + layout.address_len]) == self.address and bool(control & REPLY)
                and (control & self.mask) in self.functions and length <= layout.max_data
                and (bool(control & ERROR) or length >= self.min_data))


def reply_from(layout: Layout, raw: bytes, address: bytes) -> Frame | None:
    """The frame in ``raw`` when it decodes and is an answer from ``address``; None for anything else
    on the line (garbage, another meter, the master's own request echoed)."""
    try:
        f = decode(layout, raw)
    except ProtocolError:
        return None
    return f if f.address == address and f.control & REPLY else None


def checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


def encode(layout: Layout, address: bytes, control: int, data: bytes = b"", *, meter_type: int | None = None,
           wake: int = 4) -> bytes:
    """One frame, preceded by ``wake`` FE bytes."""
    if len(address) != layout.address_len:
        raise ValueError(f"{layout.name} address is {layout.address_len} bytes, got {len(address)}")
    if len(data) > layout.max_data:
        raise ValueError(f"{layout.name} data is at most {layout.max_data} bytes, got {len(data)}")
    if layout.type_byte and meter_type is None:
        raise ValueError(f"{layout.name} frames carry a meter type")
    body = bytearray((START,))
    if layout.type_byte:
        body.append(meter_type or 0)
    body += address
    if layout.second_start:
        body.append(START)
    body += bytes((control & 0xFF, len(data)))
    body += bytes((b + layout.data_offset) & 0xFF for b in data)
    body.append(checksum(body))
    body.append(END)
    return bytes((WAKE,)) * wake + bytes(body)


def scan(layout: Layout, buf: bytes | bytearray, expect: Expect | None = None) -> FrameScan:
    """Cut one frame off the front of ``buf`` (see :class:`agent.contract.FrameScan`).

    A 68 in garbage can look like a frame start whose length runs past what has arrived; waiting
    for it would stall the line until the timeout while the real reply sits behind it. So an
    unfinished start is given up as soon as a whole, valid frame is found further on, or a start
    that ``expect`` says can be the awaited reply. An unfinished start that can be the awaited reply
    is never given up: its data may hold bytes that form a whole frame (taking that would lose the
    reply); it is kept until its declared length has arrived and then checked like any frame. A
    false start that passes ``expect`` (the meter's own reply cut short, then its next reply) is
    resolved as soon as the bytes after it reach its declared length, else it ends in the timeout.
    """
    start = buf.find(START)
    if start < 0:
        return FrameScan(len(buf))
    if start > 0:
        return FrameScan(start)  # wake-up bytes or garbage
    r = _at_front(layout, buf)
    if r.consumed == 0 and not (expect is not None and expect.fits(layout, buf)):
        at = buf.find(START, 1)
        while at > 0:
            rest = buf[at:]
            if _at_front(layout, rest).frame is not None or (expect is not None and expect.fits(layout, rest)):
                return FrameScan(at)  # the start at 0 was garbage: resync on the frame or the reply
            at = buf.find(START, at + 1)
    return r


def _at_front(layout: Layout, buf: bytes | bytearray) -> FrameScan:
    """What the 68 at ``buf[0]`` starts: a whole frame, a rejected one, a false start, or a wait."""
    h = layout.header_len
    if len(buf) < h:
        return FrameScan(0)
    if layout.second_start and buf[h - 3] != START:
        return FrameScan(1)  # a 68 that starts no frame
    length = buf[h - 1]
    if length > layout.max_data:
        return FrameScan(1)
    total = h + length + 2
    if len(buf) < total:
        return FrameScan(0)
    if buf[total - 1] != END:
        return FrameScan(1)
    if checksum(buf[: total - 2]) != buf[total - 2]:
        return FrameScan(1, error=ProtocolError(  # drop only the 68: a real frame may start inside
            f"{layout.name} frame checksum {buf[total - 2]:02X}, computed {checksum(buf[:total - 2]):02X}"))
    return FrameScan(total, frame=bytes(buf[:total]))


def decode(layout: Layout, raw: bytes) -> Frame:
    """A frame :func:`scan` cut out (wake-up bytes allowed in front); raises ProtocolError otherwise."""
    raw = raw.lstrip(bytes((WAKE,)))
    r = scan(layout, raw)
    if r.frame is None or r.consumed != len(raw):
        raise r.error or ProtocolError(f"not one {layout.name} frame: {raw[:32].hex(' ')}")
    i = 1
    meter_type = None
    if layout.type_byte:
        meter_type, i = raw[1], 2
    address = raw[i:i + layout.address_len]
    h = layout.header_len
    data = bytes((b - layout.data_offset) & 0xFF for b in raw[h:h + raw[h - 1]])
    return Frame(address, raw[h - 2], data, meter_type)
