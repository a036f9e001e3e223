"""SunSpec 7xx DER models (701, 702, 704, 713): discovery, reads and the 704 output limit through the write
gate, against the SunSpec simulator serving the 7xx chain on a real pymodbus server (TCP and RTU)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.modbus_config import ModbusTcpLine
from agent.commands.gate import WriteGate, Writer
from agent.commands.parse import Refusal
from agent.driver import Clock, DriverContext
from drivers.sunspec import SunSpecConfig, SunSpecDriver
from drivers.sunspec.models import model
from drivers.sunspec.sim import BOTH_CHAIN, DER_CHAIN, SunSpecSim, start
from tests.drivers.test_sunspec import SimClock, free_port, values
from tests.drivers.test_sunspec import rig_for as sunspec_rig_for

DER = [701, 702, 704, 713, 124, 203]


def config(**kw) -> SunSpecConfig:
    base = {"name": "inv", "type": "sunspec", "line": "lan", "models": DER,
            "writable": ["power_limit", "battery_power"], "battery_max_w": 100_000}
    return SunSpecConfig(**{**base, **kw})


async def rig_for(*, rtu: bool = False, chain: tuple[int, ...] = DER_CHAIN, **cfg):
    """test_sunspec's rig with the simulator serving the 7xx chain and the driver reading the DER models."""
    return await sunspec_rig_for(rtu=rtu, chain=chain, **{"models": DER, **cfg})


@pytest.fixture(params=["tcp", "rtu"])
async def rig(request):
    drv, sim, clock, handle, pool, cfg = await rig_for(rtu=request.param == "rtu")
    yield drv, sim, clock, cfg
    await pool.close()
    await handle.stop()


async def test_discovery_walks_the_7xx_chain_and_reads_each_model(rig):
    drv, sim, clock, _ = rig
    v = await values(drv)
    assert list(drv.found) == [1, 701, 702, 704, 713, 124, 203]
    assert drv.found[704].length == 65  # 704's fixed groups count in the L it declares
    assert v["pv_power"] > 50_000  # midsummer noon at 31.2°N, 100 kWp
    assert v["power"] == pytest.approx(20_000 - v["pv_power"] - sim.battery.power_w, abs=30)
    assert v["pv_frequency"] == pytest.approx(50.0) and v["pv_voltage_l1"] == pytest.approx(230.0)
    assert v["pv_state"] == 4  # InvSt 3 (running) counted as 103's MPPT
    assert v["rated_power"] == 100_000 and v["max_power"] == 100_000
    assert v["rated_charge_w"] == 100_000 and v["rated_discharge_w"] == 100_000
    assert v["battery_soc"] == pytest.approx(50.0) and v["battery_soh"] == 98
    assert v["battery_energy_rating"] == pytest.approx(200.0)
    assert v["battery_energy_available"] == pytest.approx(80.0)  # (50 % - 10 % reserve) of 200 kWh
    assert v["power_limit"] == 100 and v["power_limit_enabled"] == 0
    clock.t += 3600.0
    assert (await values(drv))["pv_energy"] > 50.0  # an hour of injected energy, kWh


async def test_704_output_limit_caps_pv_through_the_gate(rig):
    drv, sim, clock, cfg = rig
    gate = WriteGate({"inv": cfg}, {"inv": drv}, Clock())
    assert await gate.write("inv", "power_limit", 25, by=Writer.command("c1")) == 25
    v = await values(drv)
    assert v["power_limit"] == 25 and v["power_limit_enabled"] == 1
    assert v["pv_power"] == pytest.approx(25_000, abs=10)
    assert v["pv_state"] == 5  # throttled
    assert [(m, n) for m, n, _ in sim.writes] == [(704, "WMaxLimPct"), (704, "WMaxLimPctEna")]
    assert sim.writes[0][2] == 25.0  # the scale factor (-1) applied: raw 250 on the wire


async def test_704_writes_outside_declared_bounds_are_refused(rig):
    drv, sim, clock, cfg = rig
    gate = WriteGate({"inv": cfg}, {"inv": drv}, Clock())
    with pytest.raises(Refusal, match=r"power_limit 101 % is outside \[0, 100\] %"):
        await gate.write("inv", "power_limit", 101, by=Writer.command("c1"))
    with pytest.raises(Refusal, match=r"power_limit -5 % is outside \[0, 100\] %"):
        await gate.write("inv", "power_limit", -5, by=Writer.command("c2"))
    ro = config(writable=[])
    with pytest.raises(Refusal, match="not declared writable"):
        await WriteGate({"inv": ro}, {"inv": drv}, Clock()).write("inv", "power_limit", 50, by=Writer.command("c3"))
    assert sim.writes == [] and not sim.limit_on  # nothing reached the device


async def test_both_chains_side_by_side_read_alike():
    """A device serving 1xx and 7xx together: a config reading either family sees the same plant."""
    port = free_port()
    clock = SimClock()
    sim = SunSpecSim(clock=clock, chain=BOTH_CHAIN)
    handle = await start(tcp=f"127.0.0.1:{port}", sim=sim)
    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)}, LINE_KINDS)
    old = SunSpecDriver(config(models=[103, 123, 802], writable=["power_limit"]),
                        DriverContext("gw", Path("."), pool, Clock()))
    new = SunSpecDriver(config(models=[701, 704, 713], writable=["power_limit"]),
                        DriverContext("gw", Path("."), pool, Clock()))
    try:
        a, b = await values(old), await values(new)
        for k in ("pv_power", "pv_frequency", "pv_state", "battery_soc", "power_limit"):
            assert a[k] == pytest.approx(b[k], abs=10), k
        await new.write("power_limit", 40)  # through 704: the 1xx view shows the same cap
        a = await values(old)
        assert a["power_limit"] == 40 and a["power_limit_enabled"] == 1
        assert a["pv_power"] == pytest.approx(40_000, abs=10)
    finally:
        await pool.close()
        await handle.stop()


def test_config_refuses_two_models_of_one_family_and_limits_without_a_control_model():
    with pytest.raises(ValueError, match="both deliver"):
        config(models=[103, 701], writable=[])
    with pytest.raises(ValueError, match="both deliver"):
        config(models=[123, 704], writable=[])
    with pytest.raises(ValueError, match="both deliver"):
        config(models=[802, 713], writable=[])
    with pytest.raises(ValueError, match="model 123 or 704"):
        config(models=[701, 713], writable=["power_limit"])
    assert [p.name for p in config(models=[701, 704], writable=["power_limit"]).points()] == ["power_limit"]


def test_model_lengths_include_fixed_groups():
    assert model(704).length == 57 and model(704).full_length == 65
    assert model(701).full_length == model(701).length == 153


@pytest.mark.parametrize("chain, drafted", [(DER_CHAIN, "models = [701, 702, 704, 713, 124, 203]"),
                                             (BOTH_CHAIN, "models = [103, 123, 124, 702, 713, 203]")])
async def test_scan_drafts_one_model_per_family(chain, drafted):
    from click.testing import CliRunner

    from agent.cli.cmd_scan import command
    from agent.config.loader import load_config_text

    port = free_port()
    handle = await start(tcp=f"127.0.0.1:{port}", unit=2, sim=SunSpecSim(clock=SimClock(), chain=chain))
    try:
        res = await asyncio.to_thread(CliRunner().invoke, command,
                                      ["--tcp", f"127.0.0.1:{port}", "--units", "2", "--timeout", "0.5"])
    finally:
        await handle.stop()
    out = res.output
    assert res.exit_code == 0, out
    assert f"SunSpec at 40000: models {', '.join(map(str, chain))}" in out
    assert drafted in out
    cfg = load_config_text('[gateway]\nid = "gw"\n' + out[out.index("[lines"):])
    assert [d.type for d in cfg.devices] == ["sunspec"]
