"""The rules docs/firmware-bridge.md fixes for edge cases hold in both codecs (Python and the C
library built from the firmware's own sources): reserved flag bits, duplicate metric indices,
control characters in strings, the LOG limit, the maximum-size body, COBS 254-byte runs, units."""

from __future__ import annotations

import ctypes
import struct

import pytest
from test_fwb_codec import COBS_RUNS
from test_fwb_conformance import CCodec

from firmware_bridge import codec as c
from firmware_bridge import framing as f


@pytest.fixture(scope="module")
def ccodec(host_build):
    return CCodec(host_build / "libfwbtest.so")


def frame(body: bytes) -> bytes:
    """Wire bytes for any body (valid CRC and COBS), bypassing the encoder's checks."""
    crc = f.crc16(body)
    return f.cobs_encode(body + bytes((crc & 0xFF, crc >> 8))) + b"\x00"


def both_reject(ccodec, wire: bytes) -> None:
    with pytest.raises(f.FrameError):
        c.decode(wire)
    assert isinstance(ccodec.canonical(wire), int), "the C decoder accepted it"


def both_accept(ccodec, wire: bytes) -> str:
    text = c.canonical(c.decode(wire))
    assert ccodec.canonical(wire) == text
    return text


@pytest.mark.parametrize("bit", [1, 2, 3])
def test_a_reserved_flag_bit_rejects_the_frame(ccodec, bit):
    body = bytearray(c.encode_body(c.TimeReq(42)))
    both_accept(ccodec, frame(bytes(body)))
    body[0] |= 1 << bit
    both_reject(ccodec, frame(bytes(body)))


def test_a_metric_index_twice_in_one_reading_is_refused(ccodec):
    values = struct.pack("<BiBi", 1, 10, 1, 11)
    body = bytes((0x10, c.MsgType.DATA)) + struct.pack("<IIIB", 7, 1, 5, 2) + values
    both_reject(ccodec, frame(body))
    with pytest.raises(ValueError, match="twice"):
        c.encode(c.Data(7, 1, 5, ((1, 10), (1, 11))))


@pytest.mark.parametrize("bad", ["temp\nerature", "t\x1b[31m", "x\x7f"])
def test_control_characters_in_names_and_units_are_refused(ccodec, bad):
    good = c.encode_body(c.Metric(0, -2, 0, "temperature", "degC"))
    body = good.replace(b"\x0btemperature", bytes((len(bad.encode()),)) + bad.encode())
    both_reject(ccodec, frame(body))
    with pytest.raises(ValueError, match="control"):
        c.encode(c.Metric(0, 0, 0, "t", bad))


def test_maximum_size_body_and_the_log_limit(ccodec):
    text = "é" * 123  # 246 bytes of UTF-8: the limit, in an addressed frame
    wire = c.encode(c.Log(1, text), addr=9)
    assert len(f.unwrap(wire)) == f.MAX_BODY and len(wire) == f.MAX_WIRE
    assert both_accept(ccodec, wire) == c.canonical(c.Frame(9, c.Log(1, text)))
    both_accept(ccodec, c.encode(c.Log(1, text)))  # the same limit without an address
    with pytest.raises(ValueError, match="at most 246"):
        c.encode(c.Log(1, text + "x"))
    body = bytes((0x10, c.MsgType.LOG, 1)) + b"x" * (c.MAX_LOG + 1)  # fits 250 bytes, but over the limit
    both_reject(ccodec, frame(body))
    both_reject(ccodec, frame(bytes((0x11, 9, c.MsgType.LOG, 1)) + b"x" * (c.MAX_LOG + 1)))


def test_cobs_254_byte_runs_encode_alike_in_both_codecs(host_build):
    lib = ctypes.CDLL(str(host_build / "libfwbtest.so"))
    lib.fwb_cobs_encode.restype = ctypes.c_size_t
    lib.fwb_cobs_encode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.fwb_cobs_decode.restype = ctypes.c_int
    lib.fwb_cobs_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    out = ctypes.create_string_buffer(600)
    for raw, enc in COBS_RUNS:
        n = lib.fwb_cobs_encode(raw, len(raw), out)
        assert out.raw[:n] == enc == f.cobs_encode(raw)
        n = lib.fwb_cobs_decode(enc, len(enc), out)
        assert out.raw[:n] == raw
    # a frame can never hold a full 254-byte block: body + CRC is at most 252 bytes
    assert f.MAX_BODY + 2 < 254


def test_both_sides_know_the_same_standard_units(host_build):
    lib = ctypes.CDLL(str(host_build / "libfwbtest.so"))
    lib.fwb_unit_standard.argtypes = [ctypes.c_char_p]
    for unit in c.STANDARD_UNITS:
        assert lib.fwb_unit_standard(unit.encode()) == 1, unit
    for unit in ("°C", "C", "celsius", "kwh"):
        assert lib.fwb_unit_standard(unit.encode()) == 0 and unit not in c.STANDARD_UNITS
