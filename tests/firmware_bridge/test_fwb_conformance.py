"""The C codec (built as a shared library) and the Python codec agree byte for byte, both ways,
and both decoders survive fuzzed input."""

from __future__ import annotations

import ctypes
import subprocess

import pytest
from fwb_strategies import addrs, messages
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import codec as c
from firmware_bridge import framing as f
from firmware_bridge.vectors import VECTORS

BUF = 4096


class CCodec:
    def __init__(self, path):
        lib = ctypes.CDLL(str(path))
        for name in ("fwb_t_canonical", "fwb_t_reencode", "fwb_t_random", "fwb_t_rx_count"):
            getattr(lib, name).restype = ctypes.c_int
        lib.fwb_t_canonical.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        lib.fwb_t_reencode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        lib.fwb_t_random.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
        lib.fwb_t_rx_count.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.lib = lib
        self.out = ctypes.create_string_buffer(BUF)

    def canonical(self, wire: bytes) -> str | int:
        body = wire[:-1] if wire.endswith(b"\x00") else wire
        n = self.lib.fwb_t_canonical(body, len(body), self.out, BUF)
        return self.out.raw[:n].decode() if n >= 0 else n

    def reencode(self, wire: bytes) -> bytes | int:
        n = self.lib.fwb_t_reencode(wire[:-1], len(wire) - 1, self.out, BUF)
        return self.out.raw[:n] if n >= 0 else n

    def random(self, seed: int) -> bytes:
        n = self.lib.fwb_t_random(seed, self.out, BUF)
        assert n > 0, f"C failed to encode its random message {seed}: {n}"
        return self.out.raw[:n]

    def rx_count(self, data: bytes) -> int:
        return self.lib.fwb_t_rx_count(data, len(data))


@pytest.fixture(scope="module")
def ccodec(host_build):
    return CCodec(host_build / "libfwbtest.so")


def test_c_messages_decode_identically_in_python(ccodec):
    types = set()
    for seed in range(1, 5001):
        wire = ccodec.random(seed)
        frame = c.decode(wire)
        types.add(frame.msg.TYPE)
        assert c.canonical(frame) == ccodec.canonical(wire), f"seed {seed}"
        assert c.encode(frame.msg, frame.addr) == wire, f"seed {seed}"
    assert types == set(c.MsgType)


@settings(max_examples=3000, deadline=None)
@given(messages, addrs)
def test_python_messages_decode_identically_in_c(ccodec, msg, addr):
    wire = c.encode(msg, addr)
    assert ccodec.canonical(wire) == c.canonical(c.Frame(addr, msg))
    assert ccodec.reencode(wire) == wire


def test_spec_vectors_decode_in_c(ccodec):
    for msg, addr in VECTORS:
        assert ccodec.canonical(c.encode(msg, addr)) == c.canonical(c.Frame(addr, msg))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_both_decoders_reject_the_same_garbage(ccodec, data):
    body = data.replace(b"\x00", b"")
    try:
        py = c.canonical(c.decode(body))
    except f.FrameError:
        py = None
    cc = ccodec.canonical(body) if body else -3
    # strings are checked for UTF-8 only in Python; everything else must agree exactly
    if isinstance(cc, str) and py is None:
        with pytest.raises(f.FrameError, match="UTF-8"):
            c.decode(body)
    else:
        assert (py is None) == isinstance(cc, int) and (py is None or py == cc)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(messages, st.binary(max_size=20)), max_size=8))
def test_streaming_receiver_finds_every_frame_between_garbage(ccodec, items):
    stream = b"".join(b"\x00" + noise + b"\x00" + c.encode(m) for m, noise in items)
    noise_frames = sum(1 for _, noise in items if _c_valid(ccodec, noise))
    assert ccodec.rx_count(stream) == len(items) + noise_frames


def _c_valid(ccodec, data: bytes) -> bool:
    parts = [p for p in data.split(b"\x00") if p]
    return any(isinstance(ccodec.canonical(p), str) for p in parts)


def test_c_decoder_survives_fuzzing_under_sanitizers(host_build):
    proc = subprocess.run([str(host_build / "fwb_fuzz"), "300000", "12345"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decoded" in proc.stdout and "rejected" in proc.stdout
