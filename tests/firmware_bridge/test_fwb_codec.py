"""Python codec: round trips, framing limits, resync after garbage, and fuzzed input."""

from __future__ import annotations

import pytest
from fwb_strategies import addrs, messages
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.serial_port import split_frames
from agent.errors import ProtocolError
from firmware_bridge import codec as c
from firmware_bridge import framing as f


def test_crc_is_ccitt_false_check_value():
    assert f.crc16(b"123456789") == 0x29B1


def test_cobs_known_vectors():
    # the examples of Cheshire & Baker's COBS paper (as tabulated on Wikipedia)
    assert f.cobs_encode(b"\x00") == b"\x01\x01"
    assert f.cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert f.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert f.cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    for raw, enc in COBS_RUNS:
        assert f.cobs_encode(raw) == enc and f.cobs_decode(enc) == raw


# 254-byte runs (Wikipedia's COBS examples 5-9): a full block at the very end opens no empty block
COBS_RUNS = [
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@settings(max_examples=1500, deadline=None)
@given(messages, addrs)
def test_every_message_round_trips_and_is_one_delimited_frame(msg, addr):
    wire = c.encode(msg, addr)
    assert wire.index(0) == len(wire) - 1 and len(wire) <= f.MAX_WIRE
    assert c.decode(wire) == c.Frame(addr, msg)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_cobs_round_trips_any_bytes(data):
    enc = f.cobs_encode(data)
    assert 0 not in enc and f.cobs_decode(enc) == data


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_survives_any_bytes_with_a_typed_error(data):
    try:
        c.decode(data)
    except ProtocolError:
        pass
    frames, errors, _ = split_frames(f.scan, data)
    for fr in frames:
        try:
            c.decode(fr)
        except f.FrameError:
            pass  # a valid frame (CRC holds) whose payload is malformed


@settings(max_examples=500, deadline=None)
@given(messages, st.binary(max_size=80), st.binary(max_size=80))
def test_frame_after_garbage_is_found_after_resync(msg, garbage, tail):
    wire = c.encode(msg)
    frames, _, _ = split_frames(f.scan, garbage + b"\x00" + wire + tail)
    assert c.Frame(None, msg) in [c.decode(fr) for fr in frames if _decodes(fr)]


@settings(max_examples=500, deadline=None)
@given(messages, st.data())
def test_a_flipped_bit_is_never_accepted(msg, data):
    wire = bytearray(c.encode(msg))
    bit = data.draw(st.integers(0, (len(wire) - 1) * 8 - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    frames, _, _ = split_frames(f.scan, wire)
    # a flip can only split the frame (a new 0x00): no piece may pass as the original message
    assert all(not _decodes(fr) or c.decode(fr).msg != msg for fr in frames)


def _decodes(fr: bytes) -> bool:
    try:
        c.decode(fr)
        return True
    except f.FrameError:
        return False


def test_limits_and_errors_name_the_problem():
    with pytest.raises(ValueError, match="at most 32"):
        c.encode(c.Metric(0, 0, 0, "x" * 33, ""))
    with pytest.raises(ValueError, match="out of range"):
        c.encode(c.Ack(1 << 32, 0))
    with pytest.raises(f.FrameError, match="CRC mismatch"):
        c.decode(bytes.fromhex("04 10 11 07 01 01 02 01 01 01 03 de 7d 00"))
    with pytest.raises(f.FrameError, match="trailing"):
        c.decode(f.wrap(c.encode_body(c.Ack(1, 2)) + b"\x00"))
    with pytest.raises(f.FrameError, match="version"):
        c.decode(f.wrap(b"\x20\x11" + bytes(8)))
    with pytest.raises(f.FrameError, match="unknown message type"):
        c.decode(f.wrap(b"\x10\x99"))
    # a run of bytes longer than any frame is dropped (resync), not buffered forever
    assert f.scan(b"\x01" * (f.MAX_COBS + 5)).consumed == 5


def test_spec_test_vectors_match_the_codec():
    from pathlib import Path

    from firmware_bridge.vectors import VECTORS, render

    doc = (Path(__file__).parents[2] / "docs" / "firmware-bridge.md").read_text()
    assert render() in doc, "docs/firmware-bridge.md vectors are stale: run python -m firmware_bridge.vectors"
    for msg, addr in VECTORS:
        assert c.decode(c.encode(msg, addr)) == (addr, msg)
