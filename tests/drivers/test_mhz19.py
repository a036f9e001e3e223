"""MH-Z19B: codec vectors, fuzzed frame scanner, and the driver (ABC, warm-up) over a real pty."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.serial_port import SerialLineConfig, split_frames
from agent.driver import Clock, DriverContext
from agent.errors import DeviceTimeout, ProtocolError
from agent.model import Quality
from agent.simkit.serial_pty import Fault
from drivers.mhz19 import SPEC, codec
from drivers.mhz19.codec import Mhz19ChecksumError, Mhz19Reading
from drivers.mhz19.sim import Mhz19Sim

VECTOR = bytes.fromhex("FF 86 01 F4 40 00 00 00 45")


def test_reference_vectors():
    assert codec.decode_reading(VECTOR) == Mhz19Reading(500, 24, 0)
    assert codec.encode_reading(Mhz19Reading(500, 24, 0)) == VECTOR
    assert codec.READ.hex(" ") == "ff 01 86 00 00 00 00 00 79"
    assert codec.ABC_ON.hex(" ") == "ff 01 79 a0 00 00 00 00 e6"
    assert codec.ABC_OFF.hex(" ") == "ff 01 79 00 00 00 00 00 86"
    assert codec.ZERO_CALIBRATION.hex(" ") == "ff 01 87 00 00 00 00 00 78"
    assert codec.set_range(2000).hex(" ") == "ff 01 99 00 00 00 07 d0 8f"
    assert codec.set_range(5000).hex(" ") == "ff 01 99 00 00 00 13 88 cb"
    assert codec.set_range(10000).hex(" ") == "ff 01 99 00 00 00 27 10 2f"


def test_bad_frames_raise_typed_errors():
    with pytest.raises(Mhz19ChecksumError, match="checksum"):
        codec.decode_reading(VECTOR[:8] + b"\x46")
    with pytest.raises(ProtocolError, match="9 bytes"):
        codec.decode_reading(VECTOR[:5])
    with pytest.raises(ProtocolError, match="FF 86"):
        codec.decode_reading(b"\xff\x79" + VECTOR[2:])


readings = st.builds(Mhz19Reading, st.integers(0, 0xFFFF), st.integers(-40, 215), st.integers(0, 255))
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_scanner_never_crashes_and_only_returns_valid_frames(data):
    found, errors, _ = split_frames(codec.scan, data)
    for f in found:
        assert f[0] == 0xFF and f[1] in codec.REPLY_COMMANDS and codec.checksum(f) == f[8]
    assert all(isinstance(e, ProtocolError) for e in errors)


@FUZZ
@given(readings, st.binary(max_size=64).map(lambda b: b.replace(b"\xff", b"")), st.binary(max_size=30))
def test_reply_after_garbage_is_found_exactly(reading, garbage, tail):
    found, _, _ = split_frames(codec.scan, garbage + codec.encode_reading(reading) + tail)
    assert found and codec.decode_reading(found[0]) == reading


@FUZZ
@given(readings, st.integers(0, 9 * 8 - 1))
def test_any_single_bit_error_is_never_accepted(reading, bit):
    bad = bytearray(codec.encode_reading(reading))
    bad[bit // 8] ^= 1 << (bit % 8)
    found, _, _ = split_frames(codec.scan, bad)
    assert [f for f in found if f[1] == codec.CMD_READ] == []


@FUZZ
@given(readings, readings, st.integers(1, 8))
def test_truncated_reply_followed_by_a_whole_one_resynchronises(first, second, cut):
    data = codec.encode_reading(first)[:cut] + codec.encode_reading(second)
    found, _, _ = split_frames(codec.scan, data)
    assert found and found[-1] in (codec.encode_reading(second), data[:9])  # data[:9]: splice, valid 8-bit sum


# -- driver over a real pty ----------------------------------------------------------------------

class ManualClock(Clock):
    def __init__(self):
        self.t = 50.0

    def monotonic(self) -> float:
        return self.t


def make_driver(path, tmp_path, clock=None, **cfg):
    pool = BusPool({"co2": SerialLineConfig(type="serial", port=path)}, LINE_KINDS)
    config = SPEC.config_model(name="co2", type="mhz19", line="co2", timeout=10.0, **cfg)  # a loaded machine
    return SPEC.factory(config, DriverContext("gw", tmp_path, pool, clock or Clock())), pool


async def test_reads_co2_sets_abc_and_flags_warmup(tmp_path):
    sim = await Mhz19Sim(co2=812, seed=2).start()
    clock = ManualClock()
    drv, pool = make_driver(sim.path, tmp_path, clock, abc=False, detection_range=2000, warmup=180)
    try:
        await drv.open()
        s = await drv.read()
        assert sim.abc is False and sim.detection_range == 2000
        assert [(x.metric, x.value, x.quality) for x in s] == [
            ("co2", 812.0, Quality.ESTIMATED), ("temperature", 24.0, Quality.ESTIMATED)]
        clock.t += 180
        assert [(x.value, x.quality) for x in await drv.read()][0] == (812.0, 0)
        sim.faults.append(Fault.BAD_CHECKSUM)
        with pytest.raises(Mhz19ChecksumError):
            await drv.read()
        sim.faults.append(Fault.TRUNCATE)
        with pytest.raises(DeviceTimeout):
            await drv.read()
        sim.faults.append(Fault.GARBAGE)
        assert (await drv.read())[0].value == 812.0
    finally:
        await pool.close()
        await sim.stop()


async def test_warmup_skip_reports_nothing_until_warm(tmp_path):
    sim = await Mhz19Sim(co2=420).start()
    clock = ManualClock()
    drv, pool = make_driver(sim.path, tmp_path, clock, warmup_mode="skip", warmup=60)
    try:
        await drv.open()
        assert await drv.read() == [] and sim.reads == 1 and sim.abc is None
        clock.t += 61
        assert (await drv.read())[0].value == 420.0
    finally:
        await pool.close()
        await sim.stop()
