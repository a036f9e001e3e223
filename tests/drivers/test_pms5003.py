"""PMS5003: codec vectors, fuzzed frame scanner, and the driver against the simulator over a real pty."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.serial_port import SerialLineConfig, split_frames
from agent.driver import DriverContext
from agent.errors import BusUnavailable, DeviceTimeout, ProtocolError
from agent.simkit.serial_pty import Fault
from drivers.pms5003 import SPEC, codec
from drivers.pms5003.codec import Pms5003ChecksumError, Pms5003Reading
from drivers.pms5003.sim import DEFAULT, Pms5003Sim

VECTOR = bytes.fromhex(
    "42 4D 00 1C 00 0A 00 0F 00 14 00 0A 00 0F 00 14 0B B8 03 84 00 C8 00 1E 00 05 00 01 91 00 03 CC")

readings = st.binary(min_size=26, max_size=26).map(lambda b: Pms5003Reading(*struct.unpack(">12HBB", b)))


def test_reference_vector_decodes_and_encodes():
    r = codec.decode(VECTOR)
    assert (r.pm1_0, r.pm2_5, r.pm10, r.pm1_0_cf1, r.pm2_5_cf1, r.pm10_cf1) == (10, 15, 20, 10, 15, 20)
    assert (r.gt0_3um, r.gt0_5um, r.gt1_0um, r.gt2_5um, r.gt5_0um, r.gt10um) == (3000, 900, 200, 30, 5, 1)
    assert r.version == 0x91
    assert codec.encode(r) == VECTOR


def test_command_bytes_match_the_datasheet_table():
    assert codec.PASSIVE_MODE.hex(" ") == "42 4d e1 00 00 01 70"
    assert codec.ACTIVE_MODE.hex(" ") == "42 4d e1 00 01 01 71"
    assert codec.READ.hex(" ") == "42 4d e2 00 00 01 71"
    assert codec.SLEEP.hex(" ") == "42 4d e4 00 00 01 73"
    assert codec.WAKE.hex(" ") == "42 4d e4 00 01 01 74"


def test_bad_frames_raise_typed_errors_that_say_what_is_wrong():
    bad = bytearray(VECTOR)
    bad[31] ^= 1
    with pytest.raises(Pms5003ChecksumError, match="checksum"):
        codec.decode(bad)
    with pytest.raises(ProtocolError, match="32 bytes"):
        codec.decode(VECTOR[:20])
    with pytest.raises(ProtocolError, match="length field"):
        codec.decode(VECTOR[:2] + b"\x00\x1d" + VECTOR[4:])


FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_scanner_never_crashes_and_only_returns_valid_frames(data):
    frames, errors, _ = split_frames(codec.scan, data)
    for f in frames:
        codec.decode(f)  # every accepted frame decodes (header, length and checksum hold)
    assert all(isinstance(e, ProtocolError) for e in errors)


@FUZZ
@given(readings, st.binary(max_size=64).map(lambda b: b.replace(b"B", b"")), st.binary(max_size=40))
def test_frame_after_garbage_is_found_exactly(reading, garbage, tail):
    frames, _, _ = split_frames(codec.scan, garbage + codec.encode(reading) + tail)
    assert frames and codec.decode(frames[0]) == reading


@FUZZ
@given(readings, st.integers(0, 32 * 8 - 1))
def test_any_single_bit_error_is_never_accepted(reading, bit):
    frame = bytearray(codec.encode(reading))
    frame[bit // 8] ^= 1 << (bit % 8)
    frames, _, _ = split_frames(codec.scan, frame)
    assert frames == []


@FUZZ
@given(readings, readings, st.integers(1, 31))
def test_truncated_frame_followed_by_a_whole_one_resynchronises(first, second, cut):
    data = codec.encode(first)[:cut] + codec.encode(second)
    frames, _, _ = split_frames(codec.scan, data)
    assert frames
    # Either the whole frame is found, or the splice of both happened to carry a valid 16-bit sum
    # (the protocol cannot tell those apart); nothing else is ever accepted.
    assert frames[-1] in (codec.encode(second), data[:32])


# -- driver over a real pty ----------------------------------------------------------------------

def make_driver(path: str, tmp_path, **cfg):
    line = SerialLineConfig(type="serial", port=path, baudrate=9600, reopen_min=0.05, reopen_max=0.2)
    pool = BusPool({"air": line}, LINE_KINDS)
    config = SPEC.config_model(name="pm", type="pms5003", line="air", **cfg)
    return SPEC.factory(config, DriverContext("gw", tmp_path, pool)), pool


async def test_passive_mode_reads_fresh_values(tmp_path):
    sim = await Pms5003Sim(active=True, interval=0.05).start()
    drv, pool = make_driver(sim.path, tmp_path, timeout=10.0)
    try:
        await drv.open()
        samples = {s.metric: s.value for s in await drv.read()}
        assert not sim.active  # the driver switched it to passive
        assert samples["pm2_5"] == 15 and samples["pm10"] == 20 and samples["gt0_3um"] == 3000
        sim.reading = dataclasses.replace(DEFAULT, pm2_5=77)
        assert {s.metric: s.value for s in await drv.read()}["pm2_5"] == 77
        assert codec.READ in sim.commands
    finally:
        await pool.close()
        await sim.stop()


async def test_active_mode_takes_the_next_streamed_frame(tmp_path):
    sim = await Pms5003Sim(active=False, interval=0.05).start()
    drv, pool = make_driver(sim.path, tmp_path, mode="active", timeout=10.0)
    try:
        await drv.open()
        sim.reading = dataclasses.replace(DEFAULT, pm10=99)
        assert {s.metric: s.value for s in await drv.read()}["pm10"] == 99
        assert sim.active  # the driver switched it to active mode
        assert codec.READ not in sim.commands
    finally:
        await pool.close()
        await sim.stop()


async def test_faults_on_the_wire_never_yield_a_wrong_value(tmp_path):
    sim = await Pms5003Sim(active=False, seed=1).start()
    drv, pool = make_driver(sim.path, tmp_path, timeout=10.0)  # a loaded machine; a cut frame costs this
    bus = pool.get("air")
    try:
        await drv.open()
        sim.faults.append(Fault.BAD_CHECKSUM)
        with pytest.raises(Pms5003ChecksumError):
            await drv.read()
        assert bus.counters["checksum_errors"] == 1
        sim.faults.append(Fault.GARBAGE)
        assert {s.metric: s.value for s in await drv.read()}["pm2_5"] == 15
        sim.faults.append(Fault.TRUNCATE)
        with pytest.raises(DeviceTimeout):
            await drv.read()
        assert {s.metric: s.value for s in await drv.read()}["pm2_5"] == 15
        sim.write_raw(b"\x00garbage BM\x00\x1c")  # stale junk between polls is flushed, not parsed
        assert {s.metric: s.value for s in await drv.read()}["pm1_0"] == 10
        assert bus.counters["frames_ok"] == 3
    finally:
        await pool.close()
        await sim.stop()


async def test_random_faults_stream_only_yields_correct_values(tmp_path):
    sim = await Pms5003Sim(active=False, fault_rate=0.5, seed=7).start()
    drv, pool = make_driver(sim.path, tmp_path, timeout=0.3)
    try:
        await drv.open()
        good = 0
        for _ in range(30):
            try:
                values = {s.metric: s.value for s in await drv.read()}
            except (ProtocolError, DeviceTimeout):
                continue
            good += 1
            assert values["pm2_5"] == 15 and values["gt10um"] == 1
        assert good >= 5
    finally:
        await pool.close()
        await sim.stop()


async def test_unplug_and_replug_on_a_stable_path(tmp_path):
    link = tmp_path / "ttyUSB0"
    sim = await Pms5003Sim(active=False, link=link).start()
    drv, pool = make_driver(str(link), tmp_path, timeout=10.0)
    bus = pool.get("air")
    try:
        await drv.open()
        assert len(await drv.read()) == 12
        sim.unplug()
        with pytest.raises(BusUnavailable):
            await drv.read()
        with pytest.raises(BusUnavailable):
            await drv.read()  # still down: backoff, reported once
        assert bus.state == "down" and bus.counters["downs"] == 1
        await sim.replug()
        import asyncio
        for _ in range(50):
            try:
                await drv.open()
                break
            except BusUnavailable:
                await asyncio.sleep(0.05)
        assert {s.metric: s.value for s in await drv.read()}["pm2_5"] == 15
        assert bus.state == "up" and bus.counters["ups"] == 2 and bus.counters["downs"] == 1
    finally:
        await pool.close()
        await sim.stop()
