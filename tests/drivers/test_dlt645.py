"""DL/T 645: the codec (reference vectors, broken input), the driver against its simulator on a pty
and over TCP (faults, 1997, slow identifiers), against the independent `dlt645` package's meter over
TCP, and broadcast time sync through the write gate."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.serial_port import split_frames
from agent.commands import CommandRouter, CommandsConfig, IdStore
from agent.contract import MetricKind, ProtocolError
from agent.simkit.conformance import SimDevice, build_driver
from drivers.dlt645 import SPEC, codec
from drivers.dlt645 import frame as fr
from drivers.dlt645.codec import Edition, Fmt, MeterError
from drivers.dlt645.sim import DEFAULTS, Dlt645Sim, Meter, start
from tests.driver_rig import fault_then_read, line_faults, opened, replies_after, replies_in_two

ADDR = "123456781012"


# -- codec -------------------------------------------------------------------------------------
def test_requests_match_the_reference_vectors() -> None:
    a = codec.parse_address(ADDR)
    assert codec.read_request(a, 0x00010000).hex(" ").upper() == \
        "FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 34 33 E8 16"
    assert codec.address_request().hex(" ").upper() == "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"
    assert codec.time_sync_request(datetime(2025, 6, 1, 8, 0, 0)).hex(" ").upper() == \
        "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 33 33 3B 34 39 58 DA 16"
    assert codec.format_address(a) == ADDR


def test_a_reply_decodes_and_an_error_reply_is_a_typed_error() -> None:
    a = codec.parse_address(ADDR)
    raw = fr.encode(codec.LAYOUT, a, 0x91, bytes.fromhex("00000100") + Fmt(4, 2).encode(12000.01), wake=0)
    reply = codec.parse_read_reply(codec.decode(raw), 0x00010000)
    assert Fmt(4, 2).decode(reply.data) == 12000.01 and not reply.more
    err = codec.decode(fr.encode(codec.LAYOUT, a, 0xD1, b"\x02"))
    with pytest.raises(MeterError, match="no data requested"):
        codec.parse_read_reply(err, 0x00010000)
    other = codec.decode(fr.encode(codec.LAYOUT, a, 0x91, bytes.fromhex("00000200") + b"\x00" * 4))
    with pytest.raises(ProtocolError, match="reply is for identifier 00020000, asked 00010000"):
        codec.parse_read_reply(other, 0x00010000)


@pytest.mark.parametrize("fmt,value", [(Fmt(3, 3, True), -5.123), (Fmt(2, 3, True), 0.987), (Fmt(4, 2), 999999.99),
                                       (Fmt(3, 4, True), -79.9999), (Fmt(2, 0), 230)])
def test_bcd_values_round_trip_with_sign(fmt: Fmt, value: float) -> None:
    assert fmt.decode(fmt.encode(value)) == pytest.approx(value)


def test_non_bcd_bytes_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not BCD"):
        Fmt(2, 1).decode(b"\x1a\x02")


frames = st.builds(lambda a, c, d: fr.encode(codec.LAYOUT, bytes(a), c, bytes(d), wake=0),
                   st.lists(st.integers(0, 255), min_size=6, max_size=6), st.integers(0, 255),
                   st.lists(st.integers(0, 255), max_size=200))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_scanner_never_crashes_and_always_makes_progress_or_waits(data: bytes) -> None:
    r = codec.scan(data)
    assert 0 <= r.consumed <= len(data)
    assert r.frame is None or codec.decode(r.frame).control >= 0
    found, _, _ = split_frames(codec.scan, data)
    for f in found:
        codec.decode(f)  # every frame it returns is whole and checks out


@settings(max_examples=300, deadline=None)
@given(frames, st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"")), st.integers(0, 4))
def test_a_frame_is_found_after_wake_bytes_and_garbage(frame: bytes, garbage: bytes, wake: int) -> None:
    found, errors, _ = split_frames(codec.scan, garbage + b"\xfe" * wake + frame)
    assert found == [frame] and errors == []
    f = codec.decode(b"\xfe" * wake + frame)
    assert fr.encode(codec.LAYOUT, f.address, f.control, f.data, wake=0) == frame


# a 68 in garbage whose header passes (second 68 in place) and claims more bytes than ever come
FALSE_STARTS = [b"\x68" + b"\x00" * 6 + b"\x68\x91\x50",  # 80 data bytes claimed
                b"\x01\x68\x02\x03\x04\x05"]  # its second 68 is the real frame's (after FE FE), its L an address byte


@pytest.mark.parametrize("garbage", FALSE_STARTS, ids=["long-length", "second-68-in-the-reply"])
def test_a_false_frame_start_in_garbage_does_not_hide_the_frame_after_it(garbage: bytes) -> None:
    frame = fr.encode(codec.LAYOUT, codec.parse_address(ADDR), 0x91, bytes.fromhex("00010102") + b"\x98\x22", wake=2)
    found, _, _ = split_frames(codec.scan, garbage + frame)
    assert found == [frame.lstrip(b"\xfe")]


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_a_truncated_or_corrupted_frame_is_never_returned(frame: bytes, data) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))
    assert split_frames(codec.scan, frame[:cut])[0] == []
    i = data.draw(st.integers(1, len(frame) - 3))  # a byte under the checksum, not the start byte
    bad = bytearray(frame)
    bad[i] ^= data.draw(st.integers(1, 255))
    found, _, _ = split_frames(codec.scan, bytes(bad))
    assert bytes(bad) not in found
    with pytest.raises(ProtocolError):
        codec.decode(bytes(bad))


@settings(max_examples=300, deadline=None)
@given(frames, st.sampled_from([(0x00010000, Edition.V2007), (0x02010100, Edition.V2007), (0x9010, Edition.V1997)]))
def test_any_frame_as_a_reply_is_a_value_or_a_typed_error(frame: bytes, asked: tuple[int, Edition]) -> None:
    di, edition = asked
    try:
        reply = codec.parse_read_reply(codec.decode(frame), di, edition)
        Fmt(4, 2).decode(reply.data)
    except ProtocolError:  # MeterError included
        pass


# -- the driver --------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now_ms(self) -> int:
        return int(1_750_000_000_000 + self.t * 1000)

    def monotonic(self) -> float:
        return self.t


def device(port: str, **kw) -> SimDevice:
    return SimDevice(device={"type": "dlt645", "line": "rs485", "address": ADDR, "request_timeout": 10.0, **kw},
                     lines={"rs485": {"type": "serial", "port": port, "baudrate": 2400}})  # a pty refuses parity E


def meter(tmp_path: Path, sim: Dlt645Sim, **kw):
    return opened(SPEC, device(sim.path, **kw), tmp_path / "state")


async def test_reads_the_basic_profile_from_the_simulator_on_a_pty(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with meter(tmp_path, sim) as driver:
            kinds = {m.name: m.kind for m in driver.metrics()}
            assert kinds["energy_import"] is MetricKind.COUNTER and kinds["power"] is MetricKind.GAUGE
            from agent.processing.config import resolve_energy
            idx, _, method, factor = resolve_energy(driver.config, driver.metrics())
            assert (driver.metrics()[idx].name, method.value, factor) == ("energy_import", "counter", 1.0)
            got = {s.metric: s.value for s in await driver.read()}
            assert got == pytest.approx({m: DEFAULTS[m] for m in kinds})
    finally:
        await sim.stop()


async def test_energy_is_read_every_energy_interval_the_rest_every_poll(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with meter(tmp_path, sim, energy_interval=300) as driver:
            clock = Clock()
            driver.clock = clock
            first = {s.metric for s in await driver.read()}
            clock.t += 30
            second = {s.metric for s in await driver.read()}
            clock.t += 300
            third = {s.metric for s in await driver.read()}
        assert {"energy_import", "energy_export"} <= first and first == third
        assert second == first - {"energy_import", "energy_export"}
    finally:
        await sim.stop()


async def voltage(driver) -> list[float]:
    return [s.value for s in await driver.read()]


@pytest.mark.parametrize("fault,error", line_faults(MeterError))
async def test_each_fault_is_a_typed_error_or_survived_and_the_next_poll_reads(tmp_path, fault, error) -> None:
    sim = await start()
    try:
        async with meter(tmp_path, sim, metrics=["voltage_l1"]) as driver:
            await fault_then_read(driver, sim, fault, error, voltage, [229.8])
    finally:
        await sim.stop()


async def test_a_late_reply_to_another_identifier_is_skipped(tmp_path: Path) -> None:
    sim = await start()
    late = fr.encode(codec.LAYOUT, sim.meters[0].wire, 0x91, bytes.fromhex("00000200") + Fmt(4, 2).encode(1.0), wake=0)
    replies_after(sim, late)  # an answer to an earlier request arrives first
    try:
        async with meter(tmp_path, sim, metrics=["voltage_l1"]) as driver:
            assert [s.value for s in await driver.read()] == [229.8]
    finally:
        await sim.stop()


@pytest.mark.parametrize("garbage", FALSE_STARTS, ids=["long-length", "second-68-in-the-reply"])
async def test_a_reply_behind_a_false_frame_start_is_read(tmp_path: Path, garbage: bytes) -> None:
    """Garbage on the line resynchronises: the reply is read, not waited past until the timeout."""
    sim = await start()
    replies_after(sim, garbage)
    try:
        async with meter(tmp_path, sim, metrics=["voltage_l1"]) as driver:
            assert await voltage(driver) == [229.8]  # before: no valid frame within the request timeout
    finally:
        await sim.stop()


async def test_a_reply_whose_data_holds_a_whole_frame_is_read_when_it_arrives_in_two_pieces(tmp_path: Path) -> None:
    """The voltage reply carries after its value bytes that form a whole frame on the wire (another
    address, valid checksum; BCD data with +33H cannot, so the meter's value is followed by them) and
    arrives cut right after that frame: the reader waits for the rest of the reply instead of taking
    that frame and losing the reply."""
    sim = await start()
    inner = fr.encode(codec.LAYOUT, bytes.fromhex("010203040506"), 0x91, b"\x01\x02", wake=0)

    def with_frame_inside(data: bytes) -> bytes:
        f = codec.decode(data)
        return fr.encode(codec.LAYOUT, f.address, f.control, f.data + bytes((b - 0x33) & 0xFF for b in inner), wake=2)

    replies_in_two(sim, lambda data: data.index(inner) + len(inner))
    split = sim.write_raw
    sim.write_raw = lambda data: split(with_frame_inside(data))
    try:
        async with meter(tmp_path, sim, metrics=["voltage_l1"]) as driver:
            assert await voltage(driver) == [229.8]  # before: the inner frame was taken, the reply lost: a timeout
    finally:
        await sim.stop()


async def test_an_identifier_the_meter_lacks_is_dropped_once(tmp_path: Path, caplog) -> None:
    values = {k: v for k, v in DEFAULTS.items() if k != "frequency"}
    sim = await Dlt645Sim(meters=[Meter(ADDR, values)]).start()
    try:
        async with meter(tmp_path, sim) as driver:
            assert "frequency" not in {s.metric for s in await driver.read()}
            reads = sim.reads
            await driver.read()
            assert sim.reads - reads == len(driver.items) - 1 - 2  # neither frequency nor (not yet due) energy
        assert sum("has no frequency" in r.getMessage() for r in caplog.records) == 1
    finally:
        await sim.stop()


async def test_block_reads_take_fewer_requests_and_fall_back_to_single_identifiers(tmp_path: Path, caplog) -> None:
    """three_phase: voltages, currents and powers come in one block request each; a meter that
    refuses blocks is read identifier by identifier, and not asked for the block again."""
    caplog.set_level(logging.INFO, logger="edge_agent.drivers.dlt645")
    counts = {}
    for blocks in (True, False):
        sim = await Dlt645Sim(meters=[Meter(ADDR, blocks=blocks)]).start()
        try:
            async with meter(tmp_path, sim, profile="three_phase") as driver:
                got = {s.metric: s.value for s in await driver.read()}
                before = sim.reads
                await driver.read()
                counts[blocks] = sim.reads - before
            assert got == pytest.approx({m.name: DEFAULTS[m.name] for m in driver.metrics()})
        finally:
            await sim.stop()
    assert counts == {True: 8, False: 15}  # 3 blocks + 5 singles; 15 singles (energy not yet due)
    assert sum("does not answer block 0201FF00" in r.getMessage() for r in caplog.records) == 1


async def test_two_meters_on_one_line_and_a_1997_meter_over_tcp(tmp_path: Path) -> None:
    sim = await start(addresses=(ADDR, "000000000002"))
    try:
        async with meter(tmp_path, sim, metrics=["power"]) as a:
            d2, pool = build_driver(SPEC, SimDevice(device={"type": "dlt645", "line": "rs485", "address": "000000000002",
                                                            "metrics": ["power"], "request_timeout": 10},
                                                    lines={"rs485": {"type": "serial", "port": sim.path}}), tmp_path / "s2")
            sim.meters[1].values["power"] = -1.5  # exporting
            assert [s.value for s in await a.read()] == [DEFAULTS["power"]]
            assert [s.value for s in await d2.read()] == [-1.5]
            await pool.close()
    finally:
        await sim.stop()
    old = await start(edition="1997", tcp="127.0.0.1:0")
    try:
        async with meter(tmp_path, old, edition="1997", profile="three_phase") as driver:
            got = {s.metric: s.value for s in await driver.read()}
        assert "frequency" not in got and got["voltage_l1"] == 230.0 and got["current_l1"] == 5.12
        assert got["energy_import"] == DEFAULTS["energy_import"]
    finally:
        await old.stop()


async def test_the_serial_port_is_opened_8e1_at_2400_baud(tmp_path: Path, monkeypatch) -> None:
    """A pty on this kernel refuses even parity, so the bytes above run 8N1; here the settings the
    agent asks the port for are checked, as configured for a meter line."""
    import agent.bus.serial_port as sp

    asked: list[dict] = []
    real = sp.serial.serial_for_url

    def spy(url, **kw):
        asked.append(dict(kw))
        return real(url, **{**kw, "parity": "N"})

    monkeypatch.setattr(sp.serial, "serial_for_url", spy)
    sim = await start()
    try:
        dev = device(sim.path, metrics=["voltage_l1"])
        dev.lines["rs485"]["parity"] = "E"
        driver, pool = build_driver(SPEC, dev, tmp_path / "state")
        assert [s.value for s in await driver.read()] == [229.8]
        await pool.close()
    finally:
        await sim.stop()
    assert asked and {k: asked[0][k] for k in ("baudrate", "bytesize", "parity", "stopbits")} == \
        {"baudrate": 2400, "bytesize": 8, "parity": "E", "stopbits": 1}


# -- broadcast time sync: a point, through the one write gate -----------------------------------
async def test_time_sync_is_a_declared_point_written_through_the_gate(tmp_path: Path) -> None:
    sim = await start(addresses=(ADDR, "000000000002"))
    sim.meters[0].clock_offset = sim.meters[1].clock_offset = -(datetime.now() - datetime(2001, 1, 1))
    try:
        for writable, status in (([], "refused"), (["time_sync"], "accepted")):
            driver, pool = build_driver(SPEC, device(sim.path, writable=writable), tmp_path / f"s{status}")
            router = CommandRouter(CommandsConfig(), devices={"m1": driver.config}, drivers={"m1": driver},
                                   ids=IdStore(tmp_path / f"ids-{status}.db", limit=100))
            out = await router.handle("m1", orjson.dumps({"id": f"t-{status}", "action": "write", "point": "time_sync"}))
            router.close()
            await pool.close()
            assert out.status == status, out.result
        deadline = time.monotonic() + 60  # the broadcast is unanswered: wait until the simulator has taken it
        while [m.time_syncs for m in sim.meters] != [1, 1] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [m.time_syncs for m in sim.meters] == [1, 1]
        for m in sim.meters:  # the meters' clocks now read Beijing time (the default meter_timezone)
            skew = abs((m.now() - datetime.now(codec_tz()).replace(tzinfo=None)).total_seconds())
            assert skew < 5
    finally:
        await sim.stop()


def codec_tz():
    from zoneinfo import ZoneInfo
    return ZoneInfo("Asia/Shanghai")


# -- an implementation no one here wrote --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_reads_a_meter_served_by_the_dlt645_package_over_tcp(tmp_path: Path) -> None:
    from dlt645.aio import AsyncMeterServerService

    port = free_port()
    srv = AsyncMeterServerService.new_tcp_server("127.0.0.1", port, 3000)
    srv.set_address(codec.parse_address(ADDR))  # its set_address("...") takes the wire order, not the nameplate
    srv.set_00(0x00010000, 12000.01)
    srv.set_00(0x00020000, 321.5)
    srv.set_02(0x02010100, 229.8)
    srv.set_02(0x02020100, 5.123)
    srv.set_02(0x02030000, 3.4567)
    srv.set_02(0x02030100, 1.25)
    srv.set_02(0x02060000, 0.987)
    srv.set_02(0x02800002, 50.01)
    await srv.start()
    try:
        dev = SimDevice(device={"type": "dlt645", "line": "dtu", "address": ADDR, "request_timeout": 10, "timeout": 120,
                                "metrics": ["energy_import", "energy_export", "voltage_l1", "current_l1", "power",
                                            "power_l1", "power_factor", "frequency"]},
                        lines={"dtu": {"type": "serial", "port": f"socket://127.0.0.1:{port}"}})
        driver, pool = build_driver(SPEC, dev, tmp_path / "state")
        try:
            got = {s.metric: s.value for s in await driver.read()}
            bus = pool.get("dtu")
            raw = await bus.transact(codec.address_request(), read_until=codec.scan, timeout=10.0)
        finally:
            await pool.close()
    finally:
        await srv.stop()
    assert got == pytest.approx({"energy_import": 12000.01, "energy_export": 321.5, "voltage_l1": 229.8,
                                 "current_l1": 5.123, "power": 3.4567, "power_l1": 1.25, "power_factor": 0.987,
                                 "frequency": 50.01})
    assert driver.no_block == {0x0203FF00}  # it refuses the power block: read singly instead
    f = codec.decode(raw)
    assert f.control == 0x93 and codec.format_address(f.data) == ADDR


# -- the technician's CLI: simulate, scan, init, run --once -------------------------------------
def edge_agent(*args: str):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def test_scan_finds_one_meter_by_address_read_and_several_only_by_address(tmp_path: Path) -> None:
    from tests.sim_thread import simulator

    with simulator("dlt645", tcp="127.0.0.1:0") as sim:
        r = edge_agent("scan", "--protocol", "dlt645", "--timeout", "5", "--tcp", sim.tcp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "meter 123456781012: DL/T 645-2007, energy_import=12000.01 kWh" in r.stdout
    assert 'address = "123456781012"' in r.stdout and 'parity = "E"' in r.stdout
    with simulator("dlt645", addresses=(ADDR, "000000000002"), tcp="127.0.0.1:0") as sim:
        r = edge_agent("scan", "--protocol", "dlt645", "--timeout", "5", "--tcp", sim.tcp)
        assert r.returncode == 1 and "one meter on the line only" in r.stdout, r.stdout
        r = edge_agent("scan", "--protocol", "dlt645", "--timeout", "5", "--tcp", sim.tcp, "--address", f"{ADDR},000000000002")
    assert r.returncode == 0 and "meter 000000000002: DL/T 645-2007" in r.stdout, r.stdout
    assert f'name = "meter-{ADDR}"' in r.stdout


def test_init_writes_a_config_that_reads_the_meter(tmp_path: Path) -> None:
    from tests.sim_thread import simulator

    out = tmp_path / "agent.toml"
    with simulator("dlt645", tcp="127.0.0.1:0") as sim:
        r = edge_agent("init", "--gateway-id", "gw-m", "--broker", "127.0.0.1:1", "-o", str(out),
                       "--scan-dlt645", f"socket://{sim.tcp}", "--timeout", "5")
        assert r.returncode == 0 and "1 meter(s)" in r.stdout, r.stdout + r.stderr
        text = out.read_text().replace('[gateway]\nid = "gw-m"', f'[gateway]\nid = "gw-m"\nstate_dir = "{tmp_path / "st"}"')
        text = text.replace('edition = "2007"', 'edition = "2007"\nrequest_timeout = 10')  # a loaded machine
        out.write_text(text)
        assert edge_agent("check", "--config", str(out)).returncode == 0
        r = edge_agent("run", "--once", "--config", str(out))
    assert r.returncode == 0 and "1 answered, 0 failed" in r.stderr, r.stderr
    readings = {row["metric"]: row["value"] for row in orjson.loads(r.stdout.strip().partition(" ")[2])["readings"]}
    assert readings["energy_import"] == 12000.01 and readings["voltage_l1"] == 229.8


def test_simulate_prints_a_config_that_reads_its_meters(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    link = tmp_path / "ttyMETERS"
    sim = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", "dlt645", "--link", str(link),
                            "--address", ADDR, "--address", "000000000002"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lines and lines[-1].startswith('edition = "2007"') and len(
                [x for x in lines if x.startswith("edition")]) == 2):
            lines.append(sim.stdout.readline().rstrip("\n"))
        snippet = "\n".join(lines[1:]).replace('edition = "2007"', 'edition = "2007"\nrequest_timeout = 10')
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[gateway]\nid = "gw-sim"\nstate_dir = "{tmp_path / "st"}"\n[mqtt]\nhost = "127.0.0.1"\n{snippet}\n')
        r = edge_agent("run", "--once", "--config", str(cfg))
    finally:
        sim.terminate()
        sim.wait(10)
    assert r.returncode == 0 and "2 answered, 0 failed" in r.stderr, r.stderr + snippet
