"""The frame scanner DL/T 645 and CJ/T 188 share, as the serial line meets it: bytes arriving in pieces.

A reply still arriving may carry, inside its own data, bytes that form a whole frame with a valid
checksum; the reply's scanner waits for the reply whole instead of taking that frame (which would
lose the reply), while garbage with a false frame start still resynchronises on the reply behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract import Scanner
from drivers.cjt188 import codec as cjt
from drivers.cjt188.sim import UNITS
from drivers.dlt645 import codec as dlt
from drivers.meter_common import frame as fr

CJT_ADDR = cjt.parse_address("12345678000001")
DLT_ADDR = dlt.parse_address("123456781012")


class Cut(NamedTuple):
    at: int  # offset in the whole stream
    frame: bytes


def arrive(scanner: Scanner, stream: bytes, cuts: list[int]) -> tuple[list[Cut], int]:
    """Feed ``stream`` in pieces ending at ``cuts`` and scan after each piece as the serial bus does;
    the frames cut out (where) and the offset of what is left waiting (a timeout if it never completes)."""
    buf, base, out = bytearray(), 0, []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buf += stream[lo:hi]
        while buf:
            r = scanner(buf)
            if r.frame is not None:
                out.append(Cut(base, r.frame))
            elif r.error is None and r.consumed == 0:
                break
            n = max(r.consumed, 1)
            del buf[:n]
            base += n
    return out, base


# -- a reply whose data holds a whole frame ---------------------------------------------------------
def cjt_reply() -> tuple[bytes, bytes]:
    """A water meter's 901F reply (1234.68 m3, 1200.18 m3, clock 16:30:00) and the whole frame its data
    bytes form from the volume's 68 to the clock's hour 16 (meter type 34H, another address, C 2CH, L 0)."""
    reply = cjt.encode_read_reply(0x10, CJT_ADDR, 0, {"volume": 1234.68, "volume_settlement": 1200.18}, UNITS,
                                  datetime(2026, 12, 5, 16, 30, 0), 0, wake=2)
    return reply, bytes.fromhex("68 34 12 00 2C 18 00 12 00 2C 00 30 16")


def dlt_reply() -> tuple[bytes, bytes]:
    """A voltage reply (229.8 V) followed, in its data, by bytes that form a whole frame on the wire
    (the data travel +33H, so they are that frame's bytes less 33H). BCD values alone rarely do: the
    inner frame's 16H needs a data byte E3H and its length byte is at least 32H."""
    inner = fr.encode(dlt.LAYOUT, bytes.fromhex("010203040506"), 0x91, b"\x01\x02", wake=0)
    data = dlt.di_bytes(0x02010100, dlt.Edition.V2007) + dlt.Fmt(2, 1).encode(229.8) + bytes((b - 0x33) & 0xFF for b in inner)
    return fr.encode(dlt.LAYOUT, DLT_ADDR, 0x91, data, wake=2), inner


EMBEDDED: dict[str, tuple[Callable[[], tuple[bytes, bytes]], Scanner, Scanner]] = {
    "cjt188": (cjt_reply, cjt.reply_scan(CJT_ADDR, "water"), cjt.scan),
    "dlt645": (dlt_reply, dlt.reply_scan(DLT_ADDR, dlt.Edition.V2007), dlt.scan),
}


@pytest.mark.parametrize("proto", EMBEDDED)
def test_a_reply_arriving_in_pieces_is_not_given_up_for_a_frame_inside_its_data(proto: str) -> None:
    make, reply_scan, plain_scan = EMBEDDED[proto]
    reply, inner = make()
    split = reply.index(inner) + len(inner)  # the reply has arrived up to the inner frame's end
    assert arrive(plain_scan, reply, [split])[0] == [Cut(reply.index(inner), inner)]  # no expectation: lost
    assert arrive(reply_scan, reply, [split])[0] == [Cut(2, reply[2:])]
    for cuts in ([], list(range(1, len(reply)))):  # whole, and byte by byte
        assert arrive(reply_scan, reply, cuts)[0] == [Cut(2, reply[2:])]


FALSE_STARTS = {"cjt188": b"\x68\x10" + b"\x00" * 7 + b"\x81\x50", "dlt645": b"\x68" + b"\x00" * 6 + b"\x68\x91\x50"}


@pytest.mark.parametrize("proto", EMBEDDED)
def test_a_false_start_before_such_a_reply_is_dropped_for_the_reply_not_for_the_frame_inside(proto: str) -> None:
    make, reply_scan, _ = EMBEDDED[proto]
    reply, inner = make()
    stream = b"\x3a\x84" + FALSE_STARTS[proto] + reply
    at = stream.index(inner) + len(inner)
    found, _ = arrive(reply_scan, stream, [at])
    assert [c.frame for c in found] == [reply[2:]]


@pytest.mark.parametrize("proto", EMBEDDED)
def test_the_meters_own_reply_cut_short_then_its_next_reply_is_read(proto: str) -> None:
    """A start that fits the expectation but never completes (an earlier reply cut off) is dropped
    once the bytes after it reach its declared length: the whole reply behind it is read (a frame in
    the cut reply's data may come out before it; the driver skips it as another meter's)."""
    make, reply_scan, _ = EMBEDDED[proto]
    reply, _inner = make()
    for cut in (3, 12, len(reply) - 3):
        stream = reply[:cut] + reply
        found, _ = arrive(reply_scan, stream, list(range(1, len(stream))))
        assert found[-1] == Cut(cut + 2, reply[2:]), cut


# -- property: garbage, then the reply (maybe holding a frame), in any pieces -------------------------
class Proto(NamedTuple):
    layout: fr.Layout
    address: bytes
    expect: fr.Expect
    scan: Scanner
    controls: tuple[int, ...]  # of the replies generated
    meter_type: int | None


PROTOS = {"cjt188": Proto(cjt.LAYOUT, CJT_ADDR, cjt.reply_expect(CJT_ADDR, "water"), cjt.reply_scan(CJT_ADDR, "water"),
                          (0x81, 0xC1), 0x10),
          "dlt645": Proto(dlt.LAYOUT, DLT_ADDR, dlt.reply_expect(DLT_ADDR, dlt.Edition.V2007),
                          dlt.reply_scan(DLT_ADDR, dlt.Edition.V2007), (0x91, 0xB1, 0xD1, 0x92), None)}


def any_frame(p: Proto, address: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda a, c, d, t: fr.encode(p.layout, a, c, d, meter_type=t if p.layout.type_byte else None,
                                                  wake=0),
                     address, st.integers(0, 255), st.binary(max_size=30), st.integers(0, 255))


@st.composite
def line(draw, proto: str) -> tuple[bytes, int, bytes, list[int]]:
    """(stream, where the reply starts, the reply without wake bytes, where the pieces end)."""
    p = PROTOS[proto]
    n = p.layout.address_len
    addresses = st.one_of(st.binary(min_size=n, max_size=n), st.just(p.address))
    parts = draw(st.lists(st.one_of(
        st.binary(max_size=20),  # noise, 68s included
        any_frame(p, addresses),  # another meter's frame, or an earlier reply
        any_frame(p, addresses).flatmap(lambda f: st.integers(1, len(f) - 1).map(lambda k: f[:k])),  # cut short
        st.builds(lambda h, k: b"\x68" + h + bytes((k,)),
                  st.binary(min_size=p.layout.header_len - 2, max_size=p.layout.header_len - 2),
                  st.integers(0, 255)),  # a false start
    ), max_size=4))
    garbage = b"".join(parts)
    data = bytearray(draw(st.binary(min_size=p.expect.min_data, max_size=p.layout.max_data - 45)))
    if draw(st.booleans()):  # a whole frame inside the reply's data, as it travels on the wire
        inner = draw(any_frame(p, addresses))
        at = draw(st.integers(0, len(data)))
        data[at:at] = bytes((b - p.layout.data_offset) & 0xFF for b in inner)
    wake = draw(st.integers(0, 4))
    reply = fr.encode(p.layout, p.address, draw(st.sampled_from(p.controls)), bytes(data), meter_type=p.meter_type,
                      wake=0)
    stream = garbage + b"\xfe" * wake + reply
    cuts = sorted(set(draw(st.lists(st.integers(1, len(stream) - 1), max_size=8))))
    return stream, len(garbage) + wake, reply, cuts


@pytest.mark.parametrize("proto", PROTOS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_garbage_then_a_reply_in_any_pieces_gives_the_reply_or_a_timeout_never_a_frame_from_inside_it(
        proto: str, data) -> None:
    p = PROTOS[proto]
    stream, start, reply, cuts = data.draw(line(proto))
    found, waiting = arrive(p.scan, stream, cuts)
    if any(c.at < start < c.at + len(c.frame) for c in found):
        return  # a start in the garbage and the reply's first bytes made a whole valid frame: a frame is a frame
    assert not [c for c in found if start < c.at < start + len(reply)], "a frame cut out of the reply's own bytes"
    # the reply, or a wait (the request's timeout) at a start in the garbage that can be the reply
    assert Cut(start, reply) in found or (waiting < start and p.expect.fits(p.layout, stream[waiting:])), \
        (stream.hex(" "), start, cuts, found, waiting)
