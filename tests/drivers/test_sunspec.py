"""SunSpec devices: discovery, reads and writes against the SunSpec simulator on a real pymodbus server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.modbus_config import ModbusTcpLine
from agent.commands.gate import WriteGate, Writer
from agent.commands.parse import Refusal
from agent.contract import ProtocolError
from agent.driver import Clock, DriverContext
from drivers.sunspec import SunSpecConfig, SunSpecDriver
from drivers.sunspec.sim import CHAIN, SunSpecSim, start
from drivers.sunspec.simmodel import Battery, PvArray, clear_sky_ghi, sun_elevation
from tests.driver_rig import serve_modbus


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ALL = [1, 103, 123, 124, 802, 203]


def config(**kw) -> SunSpecConfig:
    base = {"name": "inv", "type": "sunspec", "line": "lan", "models": [103, 123, 124, 802, 203],
            "writable": ["power_limit", "battery_power"], "battery_max_w": 100_000}
    return SunSpecConfig(**{**base, **kw})


async def rig_for(*, base: int = 40000, rtu: bool = False, chain: tuple[int, ...] = CHAIN, **cfg):
    clock = SimClock()
    sim = SunSpecSim(base=base, clock=clock, battery=Battery(soc=0.5), load_w=20_000.0, chain=chain)
    handle, line = await serve_modbus(start, sim, rtu=rtu)
    pool = BusPool({"lan": line}, LINE_KINDS)
    cfg_ = config(**cfg)
    drv = SunSpecDriver(cfg_, DriverContext("gw", Path("."), pool, Clock()))
    await drv.open()
    return drv, sim, clock, handle, pool, cfg_


@pytest.fixture
async def rig():
    drv, sim, clock, handle, pool, cfg = await rig_for()
    yield drv, sim, clock, cfg
    await pool.close()
    await handle.stop()


async def values(drv) -> dict[str, float]:
    b = await drv.read()
    names = [m.name for m in drv.metrics()]
    return {names[int(i)]: float(v) for i, v in zip(b.series, b.value, strict=True)}


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_discovery_finds_the_marker_and_walks_the_chain(base):
    drv, sim, clock, handle, pool, _ = await rig_for(base=base)
    try:
        v = await values(drv)
        assert drv.base == base
        assert sorted(drv.found) == sorted(ALL)
        assert v["pv_power"] == pytest.approx(sim.pv_w(0.0), abs=10)  # W_SF = 1: 10 W steps
        assert v["storage_soc"] == pytest.approx(50.0)
        assert v["battery_soc"] == pytest.approx(50.0)
    finally:
        await pool.close()
        await handle.stop()


async def test_reads_over_rtu_framing():
    drv, sim, clock, handle, pool, _ = await rig_for(rtu=True)
    try:
        v = await values(drv)
        assert v["power"] == pytest.approx(sim.grid_w(), abs=10)
    finally:
        await pool.close()
        await handle.stop()


async def test_grid_meter_balances_load_pv_and_battery(rig):
    drv, sim, clock, _ = rig
    v = await values(drv)
    assert v["pv_power"] > 50_000  # midsummer noon at 31.2°N, 100 kWp
    assert v["power"] == pytest.approx(20_000 - v["pv_power"] - v["battery_power"], abs=30)
    assert v["pv_state"] == 4  # MPPT


async def test_export_limit_write_caps_pv(rig):
    drv, sim, clock, _ = rig
    before = (await values(drv))["pv_power"]
    await drv.write("power_limit", 20)
    v = await values(drv)
    assert v["power_limit"] == 20 and v["power_limit_enabled"] == 1
    assert v["pv_power"] == pytest.approx(20_000, abs=10) and before > 50_000
    assert v["pv_state"] == 5  # throttled
    assert ("123", "WMaxLimPct", 20.0) in [(str(m), n, x) for m, n, x in sim.writes]


async def test_battery_set_point_ramps_and_moves_soc(rig):
    drv, sim, clock, _ = rig
    applied = await drv.write("battery_power", -40_000)  # charge at 40 kW
    assert applied == pytest.approx(-40_000)
    clock.t += 1.0  # ramp 20 kW/s: half way after one second
    v = await values(drv)
    assert v["battery_power"] == pytest.approx(-20_000, abs=10)
    assert v["storage_state"] == 4  # charging
    clock.t += 3600.0
    v = await values(drv)
    assert v["battery_soc"] > 65.0
    await drv.write("battery_power", 30_000)
    clock.t += 10.0
    v = await values(drv)
    assert v["battery_power"] == pytest.approx(30_000, abs=10)
    assert v["storage_state"] == 3  # discharging


async def test_battery_stops_at_its_soc_bounds(rig):
    drv, sim, clock, _ = rig
    await drv.write("battery_power", 100_000)
    for _ in range(30):
        clock.t += 600.0
        v = await values(drv)
        assert v["battery_soc"] >= 10.0 - 1e-9
    assert v["battery_soc"] == pytest.approx(10.0, abs=0.1) and v["battery_power"] == 0


async def test_gate_refuses_writes_outside_declared_bounds(rig):
    drv, sim, clock, cfg = rig
    gate = WriteGate({"inv": cfg}, {"inv": drv}, Clock())
    with pytest.raises(Refusal, match=r"battery_power 150000 W is outside \[-100000, 100000\] W"):
        await gate.write("inv", "battery_power", 150_000, by=Writer.command("c1"))
    with pytest.raises(Refusal, match=r"power_limit 120 % is outside \[0, 100\] %"):
        await gate.write("inv", "power_limit", 120, by=Writer.command("c2"))
    assert sim.writes == []  # nothing reached the device
    assert await gate.write("inv", "power_limit", 50, by=Writer.command("c3")) == 50
    assert sim.limit_on and sim.limit_pct == 50


async def test_points_not_declared_writable_are_refused(rig):
    drv, sim, clock, _ = rig
    ro = config(writable=[])
    gate = WriteGate({"inv": ro}, {"inv": drv}, Clock())
    with pytest.raises(Refusal, match="not declared writable"):
        await gate.write("inv", "battery_power", 1000, by=Writer.command("c1"))
    assert sim.writes == []


async def test_a_model_the_device_lacks_is_named(rig):
    drv, sim, clock, _ = rig
    port = free_port()
    handle = await start(tcp=f"127.0.0.1:{port}", sim=SunSpecSim(clock=clock))
    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)}, LINE_KINDS)
    d = SunSpecDriver(config(models=[113], writable=[]), DriverContext("gw", Path("."), pool, Clock()))
    try:
        with pytest.raises(ProtocolError, match=r"model\(s\) 113 not on the device \(its chain: 1, 103, 123, 124, 802, 203\)"):
            await d.read()
    finally:
        await pool.close()
        await handle.stop()


def test_with_a_meter_model_the_ledger_books_the_grid_import():
    assert config(models=[103, 203], writable=[]).energy.metric == "energy_import"
    assert config(models=[103, 203], writable=[], energy={"metric": "energy_export"}).energy.metric == "energy_export"


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unsupported SunSpec model"):
        config(models=[999])
    with pytest.raises(ValueError, match="add 124 to models"):
        config(models=[103, 123])
    with pytest.raises(ValueError, match="battery_max_w"):
        config(battery_max_w=None)
    with pytest.raises(ValueError, match="both deliver"):
        config(models=[103, 113], writable=[])


def test_clear_sky_curve_and_clouds():
    noon = clear_sky_ghi(sun_elevation(31.2, 172, 12.0))
    assert 950 < noon < 1100
    assert clear_sky_ghi(sun_elevation(31.2, 172, 0.0)) == 0
    assert clear_sky_ghi(sun_elevation(31.2, 355, 12.0)) < noon * 0.75  # winter
    cloudy = PvArray(cloudiness=0.8, seed=3)
    seen = []
    for _ in range(200):
        cloudy.step_clouds(60.0)
        seen.append(cloudy.power_w(12.0))
    clear = PvArray().power_w(12.0)
    assert min(seen) < 0.6 * clear and max(seen) <= clear + 1e-9


@pytest.mark.parametrize("base", [40000, 50000])
async def test_scan_recognises_a_sunspec_device_and_drafts_its_config(base):
    import asyncio

    from click.testing import CliRunner

    from agent.cli.cmd_scan import command
    from agent.config.loader import load_config_text

    port = free_port()
    handle = await start(tcp=f"127.0.0.1:{port}", unit=3, sim=SunSpecSim(base=base, clock=SimClock()))
    try:
        res = await asyncio.to_thread(CliRunner().invoke, command,
                                      ["--tcp", f"127.0.0.1:{port}", "--units", "2-3", "--timeout", "0.5"])
    finally:
        await handle.stop()
    out = res.output
    assert res.exit_code == 0, out
    assert f"unit   3: answers; SunSpec at {base}: models 1, 103, 123, 124, 802, 203" in out
    assert 'type = "sunspec"' in out and "models = [103, 123, 124, 802, 203]" in out
    toml = out[out.index("[lines"):] if "[lines" in out else out
    cfg = load_config_text('[gateway]\nid = "gw"\n' + toml)
    assert [d.type for d in cfg.devices] == ["sunspec"]
