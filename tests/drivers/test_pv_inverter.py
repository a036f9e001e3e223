"""Vendor-map inverters (Huawei SUN2000, Sungrow SH): reads, writes through the gate and scan, against
simulators built from the profiles and served by a real pymodbus server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.commands.gate import WriteGate, Writer
from agent.commands.parse import Refusal
from agent.contract import ConfigError
from agent.contract.modbus_values import decode
from agent.driver import Clock, DriverContext
from drivers.pv_inverter import PvInverterConfig, PvInverterDriver
from drivers.pv_inverter.profile import load_profile, profile_names
from drivers.pv_inverter.sim import InverterSim, start
from drivers.sunspec.simmodel import Battery
from tests.driver_rig import serve_modbus
from tests.drivers.test_sunspec import SimClock, free_port

PROFILES = ["huawei_sun2000", "sungrow_sh"]


def config(profile: str, **kw) -> PvInverterConfig:
    points = [p.name for p in load_profile(profile).points]
    base = {"name": "inv", "type": "pv_inverter", "line": "lan", "profile": profile, "writable": points,
            "battery_max_w": 60_000, "export_max_w": 50_000}
    return PvInverterConfig(**{**base, **kw})


class Rig:
    def __init__(self, drv: PvInverterDriver, sim: InverterSim, clock: SimClock, cfg: PvInverterConfig):
        self.drv, self.sim, self.clock, self.cfg = drv, sim, clock, cfg

    async def values(self) -> dict[str, float]:
        b = await self.drv.read()
        names = [m.name for m in self.drv.metrics()]
        return {names[int(i)]: float(v) for i, v in zip(b.series, b.value, strict=True)}

    def gate(self, cfg: PvInverterConfig | None = None) -> WriteGate:
        return WriteGate({"inv": cfg or self.cfg}, {"inv": self.drv}, Clock())


async def make_rig(profile: str, *, rtu: bool = False, **cfg):
    clock = SimClock()
    sim = InverterSim(profile, clock=clock, battery=Battery(soc=0.5), load_w=20_000.0)
    handle, line = await serve_modbus(start, sim, rtu=rtu)
    pool = BusPool({"lan": line}, LINE_KINDS)
    cfg_ = config(profile, **cfg)
    drv = PvInverterDriver(cfg_, DriverContext("gw", Path("."), pool, Clock()))
    await drv.open()
    return Rig(drv, sim, clock, cfg_), handle, pool


@pytest.fixture(params=PROFILES)
async def rig(request):
    r, handle, pool = await make_rig(request.param)
    yield r
    await pool.close()
    await handle.stop()


def test_profiles_cite_their_source_document_and_version():
    assert profile_names() == PROFILES
    hw, sg = load_profile("huawei_sun2000"), load_profile("sungrow_sh")
    assert "Solar Inverter Modbus Interface Definitions" in hw.profile.source and "Issue 05" in hw.profile.source
    assert "Communication Protocol of Residential Hybrid Inverter" in sg.profile.source and "V1.1.11" in sg.profile.source
    regs = {r.name: r for r in hw.registers}
    assert (regs["pv_voltage_1"].address, regs["ac_power"].address, regs["pv_energy"].address) == (32016, 32080, 32106)
    assert (regs["power"].address, regs["battery_soc"].address, regs["battery_max_charge_w"].address) == (37113, 37760, 47075)
    regs = {r.name: r for r in sg.registers}
    assert (regs["pv_power"].address, regs["battery_soc"].address, regs["pv_power"].fc) == (5016, 13022, 4)


async def test_reads_pv_battery_and_grid(rig):
    v = await rig.values()
    s = rig.sim
    assert v["pv_power"] > 50_000  # midsummer noon at 31.2°N, 100 kWp (DC)
    assert v["power"] == pytest.approx(20_000 - s.pv_w(s.now()) - s.battery.power_w, abs=2)  # import positive
    assert v["power"] < 0  # the sun exports
    assert v["battery_soc"] == pytest.approx(50.0) and v["battery_power"] == 0
    assert v["pv_frequency"] == pytest.approx(50.0) and v["pv_voltage_l1"] == pytest.approx(230.0)
    rig.clock.t += 3600.0
    v = await rig.values()
    assert v["pv_energy"] > 50 and v["energy_export"] > 30  # an hour of sun, kWh


async def test_huawei_battery_charge_goes_through_forcible_charge():
    rig, handle, pool = await make_rig("huawei_sun2000")
    try:
        assert await rig.gate().write("inv", "battery_power", -40_000, by=Writer.command("c1")) == -40_000
        assert [a for a, _ in rig.sim.writes] == [47246, 47083, 47247, 47100]
        assert rig.sim.writes[-1] == (47100, [1])  # charge
        rig.clock.t += 10.0
        v = await rig.values()
        assert v["battery_power"] == pytest.approx(-40_000, abs=1)  # charging, in our sign
        raw = decode([rig.sim.image[3][37765], rig.sim.image[3][37766]], "int32")
        assert raw == 40_000  # the device's own sign: charging positive
        await rig.drv.write("battery_power", 0)
        assert rig.sim.writes[-1] == (47100, [0]) and rig.sim.battery.setpoint_w == 0
    finally:
        await pool.close()
        await handle.stop()


async def test_sungrow_battery_discharge_goes_through_forced_mode():
    rig, handle, pool = await make_rig("sungrow_sh")
    try:
        await rig.gate().write("inv", "battery_power", 30_000, by=Writer.command("c1"))
        assert rig.sim.writes == [(13049, [2]), (13051, [30_000]), (13050, [0xBB])]
        rig.clock.t += 10.0
        v = await rig.values()
        assert v["battery_power"] == pytest.approx(30_000, abs=1) and v["ems_mode"] == 2
        rig.clock.t += 3600.0
        assert (await rig.values())["battery_soc"] < 40
        await rig.drv.write("battery_power", 0)
        assert rig.sim.writes[-2:] == [(13050, [0xCC]), (13049, [0])]  # stop, back to self-consumption
    finally:
        await pool.close()
        await handle.stop()


async def test_zero_export_limit_holds_the_grid_at_zero_feed_in(rig):
    assert (await rig.values())["power"] < -30_000  # exporting before
    assert await rig.gate().write("inv", "export_limit_w", 0, by=Writer.command("c1")) == 0
    for _ in range(5):
        rig.clock.t += 60.0
        v = await rig.values()
        assert v["power"] >= -1.0  # no feed-in
        assert v["pv_power"] == pytest.approx(20_000 / 0.98, abs=2)  # PV throttled to the load
    await rig.drv.write("export_limit_w", 5_000)
    rig.clock.t += 60.0
    assert (await rig.values())["power"] == pytest.approx(-5_000, abs=2)


async def test_huawei_output_cap_in_percent():
    rig, handle, pool = await make_rig("huawei_sun2000")
    try:
        await rig.gate().write("inv", "power_limit", 20, by=Writer.command("c1"))
        assert rig.sim.writes == [(40125, [200])]  # 0.1 % steps
        v = await rig.values()
        assert v["power_limit"] == pytest.approx(20.0)
        assert v["ac_power"] == pytest.approx(20_000, abs=2) and v["pv_state"] == 0x0201  # power limited
    finally:
        await pool.close()
        await handle.stop()


async def test_writes_outside_declared_bounds_are_refused_and_reach_nothing(rig):
    gate = rig.gate()
    with pytest.raises(Refusal, match=r"battery_power 70000 W is outside \[-60000, 60000\] W"):
        await gate.write("inv", "battery_power", 70_000, by=Writer.command("c1"))
    with pytest.raises(Refusal, match=r"export_limit_w 60000 W is outside \[0, 50000\] W"):
        await gate.write("inv", "export_limit_w", 60_000, by=Writer.command("c2"))
    with pytest.raises(Refusal, match=r"export_limit_w -1 W is outside"):
        await gate.write("inv", "export_limit_w", -1, by=Writer.command("c3"))
    with pytest.raises(Refusal, match="not declared writable"):
        await rig.gate(config(rig.cfg.profile, writable=[])).write("inv", "battery_power", 1000, by=Writer.command("c4"))
    assert rig.sim.writes == []


async def test_huawei_reads_over_rtu_framing():
    rig, handle, pool = await make_rig("huawei_sun2000", rtu=True)
    try:
        v = await rig.values()
        assert v["battery_soc"] == pytest.approx(50.0) and v["power"] < 0
    finally:
        await pool.close()
        await handle.stop()


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown inverter profile 'huawei_sun200'.*did you mean 'huawei_sun2000'"):
        config("huawei_sun200")
    with pytest.raises(ValueError, match="battery_power needs battery_max_w"):
        config("sungrow_sh", battery_max_w=None)
    with pytest.raises(ValueError, match="'power_limit' is not a point of profile sungrow_sh"):
        config("sungrow_sh", writable=["power_limit"])
    with pytest.raises(ValueError, match=r"battery_power: battery_max_w 70000 is more than the device's register holds \(65535\)"):
        config("sungrow_sh", battery_max_w=70_000)  # 13051 is a uint16
    assert config("huawei_sun2000", battery_max_w=70_000).battery_max_w == 70_000  # 47247/47249 are uint32
    with pytest.raises(ValueError, match="unknown metric"):
        config("sungrow_sh", metrics=["nope"])
    cfg = config("huawei_sun2000", writable=[])
    assert cfg.unit == 1 and cfg.energy.metric == "energy_import"


async def test_scan_recognises_each_profile_and_drafts_its_config():
    from click.testing import CliRunner

    from agent.cli.cmd_scan import command
    from agent.config.loader import load_config_text

    for profile, seen in [("huawei_sun2000", "model 'SUN2000-100KTL-SIM'"), ("sungrow_sh", "device type 0x0E03")]:
        port = free_port()
        handle = await start(profile=profile, tcp=f"127.0.0.1:{port}", unit=3, clock=SimClock())
        try:
            res = await asyncio.to_thread(CliRunner().invoke, command,
                                          ["--tcp", f"127.0.0.1:{port}", "--units", "2-3", "--timeout", "0.5"])
        finally:
            await handle.stop()
        out = res.output
        assert res.exit_code == 0, out
        assert "unit   3: " in out and f"profile {profile} ({seen})" in out, out
        assert 'type = "pv_inverter"' in out and f'profile = "{profile}"' in out
        cfg = load_config_text('[gateway]\nid = "gw"\n' + out[out.index("[lines"):])
        assert [(d.type, d.profile) for d in cfg.devices] == [("pv_inverter", profile)]


@pytest.mark.parametrize("profile", PROFILES)
def test_driver_page_shows_each_profile_as_it_is(profile):
    from drivers.pv_inverter.profile import register_table

    page = (Path(__file__).resolve().parents[2] / "docs" / "drivers" / "pv_inverter.md").read_text(encoding="utf-8")
    table = register_table(load_profile(profile))
    assert table in page, f"docs/drivers/pv_inverter.md is out of date; its {profile} table is:\n{table}"
    for item in load_profile(profile).profile.unverified:
        assert item.split(" ")[0] in page  # what no public source confirmed is said on the page too
