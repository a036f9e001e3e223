"""CJ/T 188: the codec (hand-checked vectors, units, status bits, broken input), the driver against its
simulator on a pty and over TCP (water, heat, gas; faults; late replies), and how its counters meet
the processing path (plausibility bound, never the electricity ledger) and Home Assistant."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.serial_port import split_frames
from agent.contract import MetricKind, ProtocolError
from agent.homeassistant.entities import entity_for
from agent.processing.config import metric_problems, resolve_energy
from agent.simkit.conformance import SimDevice, build_driver
from drivers.cjt188 import SPEC, codec
from drivers.cjt188.codec import MeterError
from drivers.cjt188.sim import HEAT, WATER, Cjt188Sim, Meter, start
from drivers.meter_common import frame as fr
from tests.driver_rig import fault_then_read, line_faults, opened, replies_after, replies_in_two

ADDR = "12345678000001"


# -- codec -------------------------------------------------------------------------------------
def test_requests_match_hand_checked_frames() -> None:
    a = codec.parse_address(ADDR)
    assert a.hex(" ").upper() == "01 00 00 78 56 34 12" and codec.format_address(a) == ADDR
    # 68 10 A0..A6 01 03 1F 90 00 CS 16; CS = sum from 68 to the last data byte, mod 256
    body = bytes.fromhex("68 10 01 00 00 78 56 34 12 01 03 1F 90 00")
    assert codec.read_request(0x10, a, 0) == b"\xfe" * 4 + body + bytes((sum(body) & 0xFF, 0x16))
    # the address read of a public CJ/T 188 test tool: FE FE FE 68 AA AA..AA 03 03 0A 81 00 CS 16
    assert codec.address_request(wake=3).hex(" ").upper() == \
        "FE FE FE 68 AA AA AA AA AA AA AA AA 03 03 0A 81 00 49 16"


def test_a_water_reply_decodes_units_clock_and_status() -> None:
    # the reply of a public CJ/T 188 test tool's self-check (DI echoed 90 1F, as some meters do)
    raw = bytes.fromhex("FE FE FE 68 10 12 00 00 00 00 00 00 81 16 90 1F 00 10 00 10 00 2C 10 00 10 00 2C"
                        " 00 00 00 00 00 00 00 00 00")
    raw = raw[3:]
    raw += bytes((sum(raw) & 0xFF, 0x16))
    r = codec.parse_read_reply(codec.decode(raw), "water")
    assert r.values == {"volume": pytest.approx(1000.1), "volume_settlement": pytest.approx(1000.1)}
    assert r.clock is None and r.valve == 0 and not r.battery_low  # an all-zero clock is no date
    when = datetime(2026, 12, 5, 14, 30, 15)
    frame = codec.encode_read_reply(0x30, codec.parse_address(ADDR), 7, {"volume": 12.5, "volume_settlement": 10.0},
                                    {"volume": 0x29, "volume_settlement": 0x2C}, when, 0x0005, wake=0)
    r = codec.parse_read_reply(codec.decode(frame), "gas", 7)
    assert r.values == pytest.approx({"volume": 12.5, "volume_settlement": 10.0})  # 12500 L -> 12.5 m3
    assert r.clock == when and r.valve == 1 and r.battery_low  # D0-D1 01 closed, D2 battery low
    assert frame[11:15].hex() == "1f900700"  # DI0 DI1 SER, then the first BCD byte of 12500 L


def test_a_heat_reply_converts_every_unit_to_the_declared_one() -> None:
    units = {"heat": 0x11, "heat_settlement": 0x08, "power": 0x14, "flow_rate": 0x32, "volume": 0x2C}
    values = {**HEAT, "heat": 1.0 * 1000 / 3.6, "heat_settlement": 2000.0, "power": 1.5, "flow_rate": 0.25}
    frame = codec.encode_read_reply(0x20, codec.parse_address(ADDR), 1, values, units, datetime(2026, 1, 2, 3, 4, 5), 0)
    assert len(codec.decode(frame).data) == codec.reply_len("heat") == 0x2E
    r = codec.parse_read_reply(codec.decode(frame), "heat", 1)
    assert r.values["heat"] == pytest.approx(277.78, abs=0.01)  # sent as 1.00 GJ
    assert r.values["heat_settlement"] == pytest.approx(2000.0)  # sent as 2.00 MWh
    assert r.values["power"] == pytest.approx(1.5) and r.values["flow_rate"] == pytest.approx(0.25)
    assert r.values["supply_temperature"] == 55.5 and r.values["working_hours"] == 12345


def test_wrong_units_layouts_and_refusals_are_typed_errors_naming_the_field() -> None:
    a = codec.parse_address(ADDR)
    bad_unit = codec.encode_read_reply(0x10, a, 0, WATER, {"volume": 0x05, "volume_settlement": 0x2C}, datetime.now(), 0)
    with pytest.raises(ProtocolError, match=r"volume: unit code 05H \(kWh\) is not a m3 unit"):
        codec.parse_read_reply(codec.decode(bad_unit), "water")
    water = codec.encode_read_reply(0x10, a, 0, WATER, {"volume": 0x2C, "volume_settlement": 0x2C}, datetime.now(), 0)
    with pytest.raises(ProtocolError, match="heat meter reply has 22 data bytes, needs 46 .the water meter layout"):
        codec.parse_read_reply(codec.decode(water), "heat")
    with pytest.raises(ProtocolError, match="sequence number 00, asked 05"):
        codec.parse_read_reply(codec.decode(water), "water", 5)
    refused = fr.encode(codec.LAYOUT, a, 0xC1, bytes((0, 0x04, 0)), meter_type=0x10)
    with pytest.raises(MeterError, match="status 0004"):
        codec.parse_read_reply(codec.decode(refused), "water")
    with pytest.raises(ValueError, match="14 digits"):
        codec.parse_address("1234")


frames = st.builds(lambda t, a, c, d: fr.encode(codec.LAYOUT, bytes(a), c, bytes(d), meter_type=t, wake=0),
                   st.integers(0, 255), st.lists(st.integers(0, 255), min_size=7, max_size=7), st.integers(0, 255),
                   st.lists(st.integers(0, 255), max_size=100))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_scanner_never_crashes_and_always_makes_progress_or_waits(data: bytes) -> None:
    r = codec.scan(data)
    assert 0 <= r.consumed <= len(data)
    for f in split_frames(codec.scan, data)[0]:
        codec.decode(f)


@settings(max_examples=300, deadline=None)
@given(frames, st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"")), st.integers(0, 4))
def test_a_frame_is_found_after_wake_bytes_and_garbage(frame: bytes, garbage: bytes, wake: int) -> None:
    found, errors, _ = split_frames(codec.scan, garbage + b"\xfe" * wake + frame)
    assert found == [frame] and errors == []


# a 68 in garbage whose header claims more bytes than ever come (seen on a line: 3A … 62 68, then the reply)
FALSE_STARTS = [b"\x68\x10" + b"\x00" * 7 + b"\x81\x50",  # 80 data bytes claimed
                bytes.fromhex("3a842c7732 84d36268")]


@pytest.mark.parametrize("garbage", FALSE_STARTS, ids=["long-length", "seen-on-a-line"])
def test_a_false_frame_start_in_garbage_does_not_hide_the_frame_after_it(garbage: bytes) -> None:
    frame = fr.encode(codec.LAYOUT, codec.parse_address(ADDR), 0x81, bytes(19), meter_type=0x10, wake=2)
    found, _, _ = split_frames(codec.scan, garbage + frame)
    assert found == [frame.lstrip(b"\xfe")]


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_a_truncated_or_corrupted_frame_is_never_returned(frame: bytes, data) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))
    assert split_frames(codec.scan, frame[:cut])[0] == []
    i = data.draw(st.integers(1, len(frame) - 3))
    bad = bytearray(frame)
    bad[i] ^= data.draw(st.integers(1, 255))
    assert bytes(bad) not in split_frames(codec.scan, bytes(bad))[0]
    with pytest.raises(ProtocolError):
        codec.decode(bytes(bad))


@settings(max_examples=300, deadline=None)
@given(frames, st.sampled_from(["water", "heat", "gas"]), st.data())
def test_any_frame_or_mangled_reply_is_values_or_a_typed_error(frame: bytes, fam: str, data) -> None:
    good = codec.encode_read_reply(0x20 if fam == "heat" else 0x10, codec.parse_address(ADDR), 0,
                                   HEAT if fam == "heat" else WATER, {k: v for k, v in codec_units().items()},
                                   datetime(2026, 1, 1), 0, wake=0)
    body = bytearray(codec.decode(good).data)
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    mangled = fr.encode(codec.LAYOUT, codec.parse_address(ADDR), 0x81, bytes(body), meter_type=0x10, wake=0)
    for raw in (frame, mangled):
        try:
            r = codec.parse_read_reply(codec.decode(raw), fam)
            assert all(v >= 0 for v in r.values.values())
        except ProtocolError:  # MeterError included
            pass


def codec_units() -> dict[str, int]:
    from drivers.cjt188.sim import UNITS
    return UNITS


# -- the driver --------------------------------------------------------------------------------
def device(port: str, **kw) -> SimDevice:
    return SimDevice(device={"type": "cjt188", "line": "mbus", "address": ADDR, "profile": "water",
                             "request_timeout": 10.0, "timeout": 60.0, **kw},  # a loaded machine; silence costs this
                     lines={"mbus": {"type": "serial", "port": port, "baudrate": 2400}})  # a pty refuses parity E


def meter(tmp_path: Path, sim: Cjt188Sim, **kw):
    return opened(SPEC, device(sim.path, **kw), tmp_path / "state")


async def test_reads_a_water_meter_on_a_pty_with_valve_and_battery(tmp_path: Path) -> None:
    sim = await start()
    sim.meters[0].status = 0x0005  # valve closed, battery low
    try:
        async with meter(tmp_path, sim) as driver:
            got = {s.metric: s.value for s in await driver.read()}
        assert got["volume"] == 1234.56 and got["volume_settlement"] == 1200.5
        assert (got["valve"], got["battery_low"], got["status"]) == (1, 1, 5)
        assert abs(got["clock_offset"]) < 3600 * 24  # the sim's clock is this machine's local time
    finally:
        await sim.stop()


@pytest.mark.parametrize("heat_unit,factor", [("kWh", 1.0), ("GJ", 0.0036)])
async def test_reads_a_heat_meter_over_tcp_in_the_declared_heat_unit(tmp_path: Path, heat_unit, factor) -> None:
    sim = await start(profile="heat", tcp="127.0.0.1:0")
    sim.meters[0].units["heat"] = 0x11  # the meter counts in GJ
    sim.meters[0].values["heat"] = 10.0 * 1000 / 3.6  # 10.00 GJ
    try:
        async with meter(tmp_path, sim, profile="heat", heat_unit=heat_unit) as driver:
            units = {m.name: m.unit for m in driver.metrics()}
            got = {s.metric: s.value for s in await driver.read()}
        assert units["heat"] == heat_unit and got["heat"] == pytest.approx(10.0 * 1000 / 3.6 * factor)
        assert got["heat_settlement"] == pytest.approx(8000.0 * factor)
        assert (got["power"], got["flow_rate"], got["volume"]) == (12.34, 0.5123, 456.78)
        assert (got["supply_temperature"], got["return_temperature"], got["working_hours"]) == (55.5, 40.25, 12345)
    finally:
        await sim.stop()


async def test_two_meters_share_a_line_and_a_big_endian_di_echo_is_read(tmp_path: Path) -> None:
    sim = Cjt188Sim(meters=[Meter("12345678000001"), Meter("12345678000002", "gas", di_order="big")])
    await sim.start()
    try:
        async with meter(tmp_path, sim) as water, meter(tmp_path / "b", sim, address="12345678000002",
                                                          profile="gas") as gas:
            assert {s.metric: s.value for s in await water.read()}["volume"] == 1234.56
            assert {s.metric: s.value for s in await gas.read()}["volume"] == 1234.56
        assert [m.reads for m in sim.meters] == [1, 1]
    finally:
        await sim.stop()


async def volume(driver) -> float:
    return {s.metric: s.value for s in await driver.read()}["volume"]


@pytest.mark.parametrize("fault,error", line_faults(MeterError))
async def test_each_fault_is_a_typed_error_or_survived_and_the_next_poll_reads(tmp_path, fault, error) -> None:
    sim = await start()
    try:
        async with meter(tmp_path, sim) as driver:
            await fault_then_read(driver, sim, fault, error, volume, 1234.56)
    finally:
        await sim.stop()


async def test_a_late_reply_with_another_sequence_number_is_skipped(tmp_path: Path) -> None:
    sim = await start()
    m = sim.meters[0]
    late = codec.encode_read_reply(0x10, m.wire, 0xEE, {"volume": 1.0, "volume_settlement": 1.0},
                                   {"volume": 0x2C, "volume_settlement": 0x2C}, datetime.now(), 0, wake=0)
    replies_after(sim, late)  # an answer to an earlier request arrives first
    try:
        async with meter(tmp_path, sim) as driver:
            assert {s.metric: s.value for s in await driver.read()}["volume"] == 1234.56
    finally:
        await sim.stop()


@pytest.mark.parametrize("garbage", FALSE_STARTS, ids=["long-length", "seen-on-a-line"])
async def test_a_reply_behind_a_false_frame_start_is_read(tmp_path: Path, garbage: bytes) -> None:
    """Garbage on the line resynchronises: the reply is read, not waited past until the timeout."""
    sim = await start()
    replies_after(sim, garbage)
    try:
        async with meter(tmp_path, sim) as driver:
            assert await volume(driver) == 1234.56  # before: no valid frame within the request timeout
    finally:
        await sim.stop()


async def test_a_reply_whose_data_holds_a_whole_frame_is_read_when_it_arrives_in_two_pieces(tmp_path: Path) -> None:
    """1234.68 m3 and 1200.18 m3 at 16:30:00 on the meter's clock: the reply's data bytes 68 … 2C 00 30 16
    form a whole frame with a valid checksum (another address). The reply arrives cut right after it:
    the reader waits for the rest of the reply instead of taking that frame and losing the reply."""
    sim = await start()
    m = sim.meters[0]
    m.values = {"volume": 1234.68, "volume_settlement": 1200.18}
    clock = datetime(2026, 12, 5, 16, 30, 0)
    m.reply = lambda ser, wake: codec.encode_read_reply(m.meter_type, m.wire, ser, m.values, m.units, clock, m.status,
                                                        wake=wake)
    inner = bytes.fromhex("68 34 12 00 2C 18 00 12 00 2C 00 30 16")
    assert codec.decode(inner).address != m.wire
    replies_in_two(sim, lambda data: data.index(inner) + len(inner))
    try:
        async with meter(tmp_path, sim) as driver:
            assert await volume(driver) == 1234.68  # before: the inner frame was taken, the reply lost: a timeout
    finally:
        await sim.stop()


async def test_the_serial_port_is_opened_8e1_at_2400_baud(tmp_path: Path, monkeypatch) -> None:
    """A pty refuses even parity, so the bytes above run 8N1; here the settings the agent asks the
    port for are checked, as configured for a meter line."""
    import agent.bus.serial_port as sp

    asked: list[dict] = []
    real = sp.serial.serial_for_url

    def spy(url, **kw):
        asked.append(dict(kw))
        return real(url, **{**kw, "parity": "N"})

    monkeypatch.setattr(sp.serial, "serial_for_url", spy)
    sim = await start()
    try:
        dev = device(sim.path)
        dev.lines["mbus"]["parity"] = "E"
        driver, pool = build_driver(SPEC, dev, tmp_path / "state")
        assert {s.metric: s.value for s in await driver.read()}["volume"] == 1234.56
        await pool.close()
    finally:
        await sim.stop()
    assert asked and {k: asked[0][k] for k in ("baudrate", "bytesize", "parity", "stopbits")} == \
        {"baudrate": 2400, "bytesize": 8, "parity": "E", "stopbits": 1}


# -- counters meet the processing path and Home Assistant ---------------------------------------------
def test_counters_declare_their_bound_and_medium_and_never_feed_the_electricity_ledger(tmp_path: Path) -> None:
    for profile, counter, medium in (("water", "volume", "water"), ("gas", "volume", "gas"), ("heat", "heat", "heat")):
        driver, _ = build_driver(SPEC, device("/dev/null", profile=profile, max_flow=4, max_power=50), tmp_path)
        specs = {m.name: m for m in driver.metrics()}
        c = specs[counter]
        assert c.kind is MetricKind.COUNTER and c.medium == medium
        assert c.max_per_hour == (50.0 if counter == "heat" else 4.0)
        assert resolve_energy(driver.config, driver.metrics()) is None  # heat in kWh is not electricity
    heat = SPEC.config_model.model_validate({"name": "h", "type": "cjt188", "line": "l", "address": ADDR,
                                             "profile": "heat", "energy": {"metric": "heat"}})
    driver, _ = build_driver(SPEC, device("/dev/null", profile="heat"), tmp_path)
    [(key, msg)] = metric_problems(heat, driver.metrics())
    assert key == ("energy",) and "meters heat, not electricity" in msg


def test_home_assistant_discovery_files_water_gas_and_heat_by_medium(tmp_path: Path) -> None:
    import orjson

    from agent.homeassistant.config import HomeAssistantConfig
    from agent.homeassistant.discovery import announce
    from agent.uplink.topics import Topics
    from tests.ha_validator import validate_discovery

    seen: set[str] = set()
    cmps = {}
    for profile in ("water", "gas", "heat"):
        driver, _ = build_driver(SPEC, device("/dev/null", profile=profile, heat_unit="GJ"), tmp_path)
        a = announce(HomeAssistantConfig(), Topics("edge", "gw"), profile, "cjt188", driver.metrics())
        assert validate_discovery(a.config_topic, orjson.dumps(a.payload), seen) == [], profile
        cmps[profile] = {m: a.payload["cmps"][m] for m in a.metrics}

    def cls(profile: str, metric: str) -> tuple:
        c = cmps[profile][metric]
        return c.get("device_class"), c.get("state_class"), c.get("unit_of_measurement")

    assert cls("water", "volume") == ("water", "total", "m³")
    assert cls("gas", "volume") == ("gas", "total", "m³")
    assert cls("heat", "heat") == ("energy", "total", "GJ")
    assert cls("heat", "volume") == ("volume", "total", "m³")  # circulating heating water is no consumption
    assert cls("heat", "flow_rate")[0] == "volume_flow_rate" and cls("heat", "power")[0] == "power"
    assert cls("heat", "supply_temperature")[0] == "temperature"
    assert entity_for(driver.metrics()[0]).device_class == "energy"


def test_a_water_step_the_meter_cannot_make_is_held_and_nothing_reaches_the_electricity_ledger(tmp_path: Path) -> None:
    """The driver's declarations through the real processing stage: +50 m3 in a second is beyond a
    10 m3/h meter, so that reading is held (flagged) while true readings stay good; no ledger entry."""
    import os
    import tempfile
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))
    from agent.config.schema import AgentConfig, GatewayConfig
    from agent.driver import Clock
    from agent.model import Batch, Quality
    from agent.processing import Processor
    from agent.series import SeriesTable

    driver, _ = build_driver(SPEC, device("/dev/null"), tmp_path)
    metrics = driver.metrics()
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(driver.config,))
    table = SeriesTable()
    table.add_device("dut", metrics)
    proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
    sid = [m.name for m in metrics].index("volume")
    t0, flags = 1_750_000_000_000, []
    for k, v in enumerate([100.0, 100.002, 150.0, 100.004, 100.006]):
        b = Batch.from_columns([sid], [t0 + k * 1000], [v])
        proc.process(b, t0 + k * 1000)
        flags.append(int(b.quality[0]))
    assert flags[:2] == [0, 0] and flags[2] != 0 and flags[3:] == [0, 0]
    assert Quality(flags[2]) & (Quality.SPIKE | Quality.IMPLAUSIBLE)
    assert "dut" not in proc.summary()["energy"]


# -- the CLI: scan, and the simulator's printed config run by the real agent -------------------------
def edge_agent(*args: str):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def test_scan_finds_the_one_meter_on_a_line_and_says_when_several_answer(tmp_path: Path) -> None:
    from tests.sim_thread import simulator

    with simulator("cjt188", profile="heat", tcp="127.0.0.1:0") as sim:
        r = edge_agent("scan", "--protocol", "cjt188", "--timeout", "5", "--tcp", sim.tcp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"address read: meter type 20H, address {ADDR}" in r.stdout
    assert f"meter {ADDR}: heat, heat=8123.45, volume=456.78; valve open" in r.stdout
    assert f'address = "{ADDR}"' in r.stdout and 'profile = "heat"' in r.stdout and 'parity = "E"' in r.stdout
    with simulator("cjt188", addresses=(ADDR, "00000000000002"), tcp="127.0.0.1:0") as sim:
        r = edge_agent("scan", "--protocol", "cjt188", "--timeout", "5", "--tcp", sim.tcp)
    assert r.returncode == 1 and "one meter on the line only" in r.stdout, r.stdout


def test_simulate_prints_a_config_the_agent_runs_on_a_pty(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    import orjson

    link = tmp_path / "ttyMBUS"
    sim = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "simulate", "cjt188", "--link", str(link),
                            "--profile", "gas", "--address", ADDR],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lines and lines[-1].startswith('profile = "gas"')):
            lines.append(sim.stdout.readline().rstrip("\n"))
        snippet = "\n".join(lines[1:]) + "\nrequest_timeout = 5\n"
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[gateway]\nid = "gw-sim"\nstate_dir = "{tmp_path / "st"}"\n[mqtt]\nhost = "127.0.0.1"\n{snippet}')
        assert edge_agent("check", "--config", str(cfg)).returncode == 0
        r = edge_agent("run", "--once", "--config", str(cfg))
    finally:
        sim.terminate()
        sim.wait(10)
    assert r.returncode == 0 and "1 answered, 0 failed" in r.stderr, r.stderr + snippet
    readings = {row["metric"]: row for row in orjson.loads(r.stdout.strip().partition(" ")[2])["readings"]}
    assert readings["volume"]["value"] == 1234.56 and readings["volume"]["unit"] == "m3"
    assert readings["valve"]["value"] == 0 and readings["battery_low"]["value"] == 0


@pytest.mark.parametrize("extra,expected", [
    ('address = "1234"\nprofile = "water"', "(m).address: Value error, a CJ/T 188 address is 14 digits"),
    ('address = "12345678000001"\nprofile = "steam"', "site.toml:16: devices[0] (m).profile: Input should be 'water'"),
    ('address = "12345678000001"\nprofile = "water"\nmeter_type = 0x20', "meter_type 20H answers another layout"),
    ('address = "12345678000001"\nprofile = "heat"\nenergy = { metric = "heat" }', "meters heat, not electricity"),
])
def test_a_bad_meter_config_names_the_key_and_the_reason(tmp_path: Path, extra: str, expected: str) -> None:
    from agent.config import load_config_text
    from agent.errors import ConfigError

    text = (f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n'
            f'[lines.mbus]\ntype = "serial"\nport = "/dev/ttyUSB0"\nbaudrate = 2400\nparity = "E"\n'
            f'[[devices]]\nname = "m"\ntype = "cjt188"\nline = "mbus"\n{extra}\n')
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, source="site.toml", env={})
    assert expected in str(exc.value), str(exc.value)
