"""SDS011: codec vectors, fuzzed frame scanner, and the driver (incl. laser duty cycle) over a real pty."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.serial_port import SerialLineConfig, split_frames
from agent.driver import Clock, DriverContext
from agent.errors import ConfigError, DeviceTimeout, ProtocolError
from agent.simkit.serial_pty import Fault
from drivers.sds011 import SPEC, codec
from drivers.sds011.codec import Sds011ChecksumError
from drivers.sds011.sim import Sds011Sim

VECTOR = bytes.fromhex("AA C0 7B 00 C8 01 A1 60 45 AB")


def test_reference_vector():
    f = codec.decode(VECTOR)
    assert (f.pm2_5, f.pm10, f.device_id) == (12.3, 45.6, 0xA160)
    assert codec.encode_data(12.3, 45.6, 0xA160) == VECTOR


def test_command_frames_match_the_datasheet_table():
    zeros = "00 " * 12
    assert codec.query().hex(" ") == f"aa b4 04 {zeros}ff ff 02 ab"
    assert codec.set_query_mode().hex(" ") == "aa b4 02 01 01 " + "00 " * 10 + "ff ff 02 ab"
    assert codec.set_active_mode()[-2:] == b"\x01\xab"
    assert codec.sleep()[-2:] == b"\x05\xab"
    assert codec.work()[-2:] == b"\x06\xab"
    assert codec.command(codec.CMD_PERIOD, b"\x01\x00")[-2:] == b"\x07\xab"
    assert len(codec.query()) == 19


def test_bad_frames_raise_typed_errors():
    bad = bytearray(VECTOR)
    bad[3] ^= 0x10
    with pytest.raises(Sds011ChecksumError, match="checksum"):
        codec.decode(bad)
    with pytest.raises(ProtocolError, match="10 bytes"):
        codec.decode(VECTOR[:9])
    with pytest.raises(ProtocolError, match="neither data"):
        codec.decode(b"\xaa\xc1" + VECTOR[2:])


frames = st.tuples(st.sampled_from([codec.DATA, codec.REPLY]), st.binary(min_size=4, max_size=4),
                   st.integers(0, 0xFFFF)).map(lambda t: codec.encode(*t))
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_scanner_never_crashes_and_only_returns_valid_frames(data):
    found, errors, _ = split_frames(codec.scan, data)
    for f in found:
        codec.decode(f)
    assert all(isinstance(e, ProtocolError) for e in errors)


@FUZZ
@given(frames, st.binary(max_size=64).map(lambda b: b.replace(b"\xaa", b"")), st.binary(max_size=30))
def test_frame_after_garbage_is_found_exactly(frame, garbage, tail):
    found, _, _ = split_frames(codec.scan, garbage + frame + tail)
    assert found and found[0] == frame


@FUZZ
@given(frames, st.integers(0, 10 * 8 - 1))
def test_any_single_bit_error_is_never_accepted(frame, bit):
    bad = bytearray(frame)
    bad[bit // 8] ^= 1 << (bit % 8)
    found, _, _ = split_frames(codec.scan, bad)
    assert found == []


@FUZZ
@given(frames, frames, st.integers(1, 9))
def test_truncated_frame_followed_by_a_whole_one_resynchronises(first, second, cut):
    data = first[:cut] + second
    found, _, _ = split_frames(codec.scan, data)
    assert found and found[-1] in (second, data[:10])  # data[:10]: a splice with a valid 8-bit sum


# -- driver over a real pty ----------------------------------------------------------------------

async def until(pred, timeout=60.0):
    deadline = time.monotonic() + timeout  # a bound on time, not on turns of a loaded loop
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


class ManualClock(Clock):
    def __init__(self):
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


def make_driver(path, tmp_path, clock=None, **cfg):
    line = SerialLineConfig(type="serial", port=path, reopen_min=0.05, reopen_max=0.2)
    pool = BusPool({"air": line}, LINE_KINDS)
    config = SPEC.config_model(name="pm", type="sds011", line="air", timeout=10.0, **cfg)  # a loaded machine
    return SPEC.factory(config, DriverContext("gw", tmp_path, pool, clock or Clock())), pool


async def test_query_mode_reads_values_and_handles_faults(tmp_path):
    sim = await Sds011Sim(interval=0.05, seed=3).start()
    drv, pool = make_driver(sim.path, tmp_path)
    try:
        await drv.open()
        assert sim.query_mode
        assert {s.metric: s.value for s in await drv.read()} == {"pm2_5": 12.3, "pm10": 45.6}
        sim.pm2_5 = 3.4
        sim.faults.extend([Fault.GARBAGE])
        assert {s.metric: s.value for s in await drv.read()}["pm2_5"] == 3.4
        sim.faults.append(Fault.BAD_CHECKSUM)
        with pytest.raises(Sds011ChecksumError):
            await drv.read()
        sim.faults.append(Fault.DROP)
        with pytest.raises(DeviceTimeout):
            await drv.read()
        assert {s.metric: s.value for s in await drv.read()}["pm10"] == 45.6
        assert pool.get("air").counters["checksum_errors"] == 1
    finally:
        await pool.close()
        await sim.stop()


async def test_open_wakes_a_sensor_left_asleep(tmp_path):
    sim = await Sds011Sim(query_mode=True).start()
    sim.asleep = True
    drv, pool = make_driver(sim.path, tmp_path)
    try:
        await drv.open()
        assert not sim.asleep and sim.wakes == 1
        assert len(await drv.read()) == 2
    finally:
        await pool.close()
        await sim.stop()


async def test_duty_cycle_sleeps_the_laser_between_readings(tmp_path):
    sim = await Sds011Sim().start()
    clock = ManualClock()
    drv, pool = make_driver(sim.path, tmp_path, clock, sleep_between_reads=True, read_every=300, warmup=30)
    try:
        await drv.open()
        assert await drv.read() == []  # warming up: no value yet, and no blocking wait
        clock.t += 30
        assert len(await drv.read()) == 2
        await until(lambda: sim.asleep and sim.sleeps == 1)
        for _ in range(5):  # polls while asleep: nothing sent, nothing read
            clock.t += 50
            assert await drv.read() == []
        assert sim.asleep and sim.queries == 1
        clock.t += 20  # 300 s after the first wake
        assert await drv.read() == [] and not sim.asleep
        clock.t += 30
        assert len(await drv.read()) == 2 and sim.queries == 2
        await until(lambda: sim.asleep and sim.sleeps == 2)
    finally:
        await pool.close()
        await sim.stop()


def test_duty_cycle_config_is_checked():
    from agent.config.loader import load_config_text

    text = """
[gateway]
id = "gw"
[lines.air]
type = "serial"
port = "/dev/ttyUSB0"
[[devices]]
name = "pm"
type = "sds011"
line = "air"
sleep_between_reads = true
read_every = 20
warmup = 30
"""
    with pytest.raises(ConfigError, match="warmup"):
        load_config_text(text)
