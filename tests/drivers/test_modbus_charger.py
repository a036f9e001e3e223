"""Modbus chargers: whole sessions against the real pymodbus server simulators, per profile."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from pymodbus.client import AsyncModbusTcpClient

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.modbus_config import ModbusTcpLine
from agent.commands import CommandRouter, CommandsConfig, IdStore
from agent.config.loader import load_config_text
from agent.driver import Clock, DriverContext
from agent.errors import ConfigError
from drivers.charger_common import Car, IecState
from drivers.modbus_charger import ModbusChargerConfig, ModbusChargerDriver
from drivers.modbus_charger.profile import load_profile, profile_names
from drivers.modbus_charger.sim import start


class SimClock:
    """Manual time for the simulator, so a session takes no wall time."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class DriverClock(Clock):
    def __init__(self, sim: SimClock):
        self.sim = sim

    def monotonic(self) -> float:
        return self.sim.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def rig(request):
    profile = request.param
    port = free_port()
    clock = SimClock()
    handle = await start(profile=profile, tcp=f"127.0.0.1:{port}", clock=clock)
    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)}, LINE_KINDS)
    cfg = ModbusChargerConfig(name="cp1", type="modbus_charger", line="lan", profile=profile,
                              writable=["current_limit", "start", "stop"])
    drv = ModbusChargerDriver(cfg, DriverContext("gw", Path("."), pool, DriverClock(clock)))
    await drv.open()
    sim = next(iter(handle.sims.values()))
    yield drv, sim, clock, handle
    await drv.close()
    await pool.close()
    await handle.stop()


async def values(drv) -> dict[str, float]:
    return {s.metric: s.value for s in await drv.read()}


@pytest.mark.parametrize("rig", ["charx", "keba_p30", "abb_terra_ac"], indirect=True)
async def test_whole_session(rig):
    drv, sim, clock, _ = rig
    v = await values(drv)
    assert v["state"] == IecState.A and v["connected"] == 0 and v["power"] == 0
    await drv.write("current_limit", 16)
    sim.plug(Car(need_wh=5000, max_a=32, phases=3))
    clock.t += 1
    v = await values(drv)
    assert v["state"] == IecState.C and v["charging"] == 1
    assert v["current_l1"] == pytest.approx(16) and v["power"] == pytest.approx(16 * 230 * 3, rel=1e-3)
    assert v["power_l2"] == pytest.approx(16 * 230, rel=1e-3)
    assert v["current_limit"] == pytest.approx(16)
    await drv.write("current_limit", 10)  # lower: the car follows
    clock.t += 600
    v = await values(drv)
    assert v["current_l1"] == pytest.approx(10) and v["session_energy"] == pytest.approx(10 * 690 * 600 / 3.6e6, abs=0.01)
    await drv.write("current_limit", 0)  # pause (setpoint 0 or enable off, per profile)
    clock.t += 1
    v = await values(drv)
    assert v["state"] == IecState.B and v["power"] == 0
    await drv.write("stop", True)
    await drv.write("start", True)
    await drv.write("current_limit", 32)
    clock.t += 3 * 3600  # long enough to finish: the car stops drawing
    v = await values(drv)
    assert v["state"] == IecState.B and v["session_energy"] == pytest.approx(5.0, abs=0.01)
    sim.unplug()
    v = await values(drv)
    assert v["state"] == IecState.A and v["connected"] == 0


@pytest.mark.parametrize("rig", ["charx", "abb_terra_ac"], indirect=True)
async def test_stop_and_start(rig):
    drv, sim, clock, _ = rig
    sim.plug(Car(need_wh=50_000))
    await drv.write("current_limit", 20)
    clock.t += 1
    assert (await values(drv))["state"] == IecState.C
    await drv.write("stop", True)
    clock.t += 1
    v = await values(drv)
    assert v["state"] == IecState.B and v["enabled"] == 0
    await drv.write("current_limit", 16)  # a limit while stopped does not restart charging
    clock.t += 1
    assert (await values(drv))["state"] == IecState.B
    await drv.write("start", True)
    clock.t += 1
    v = await values(drv)
    assert v["state"] == IecState.C and v["current_l1"] == pytest.approx(16)


@pytest.mark.parametrize("rig", ["keba_p30"], indirect=True)
async def test_keba_heartbeat_keeps_the_limit_and_lapse_falls_back(rig):
    drv, sim, clock, _ = rig
    sim.plug(Car(need_wh=90_000))
    await drv.write("current_limit", 20)
    for _ in range(6):  # polls every 10 s: the driver rewrites the failsafe register every 15 s
        clock.t += 10
        v = await values(drv)
        assert v["current_l1"] == pytest.approx(20)
    hb = [w for w in sim.writes if w[0] == 5018]
    assert len(hb) == 3 and all(w[1] == [30] for w in hb)
    clock.t += 31  # the gateway goes quiet: the station falls back to its failsafe current
    assert sim.evse.failsafe_active(sim.now()) and sim.evse.current_a(sim.now()) == 6.0
    v = await values(drv)  # the next poll heartbeats again; the limit recovers
    assert v["current_l1"] == pytest.approx(20)
    clock.t += 45
    assert sim.evse.current_a(sim.now()) == 6.0


@pytest.mark.parametrize("rig", ["charx"], indirect=True)
async def test_register_facts_on_the_wire(rig):
    """Independent of the profile codec: CHARX connector 1 power at 1244 is int32 mW, state at 1299 is ASCII high byte."""
    drv, sim, clock, handle = rig
    sim.plug(Car(need_wh=50_000))
    await drv.write("current_limit", 13)
    clock.t += 1
    host, port = handle.address.split(":")
    c = AsyncModbusTcpClient(host, port=int(port))
    await c.connect()
    try:
        rr = await c.read_holding_registers(1244, count=2, device_id=255)
        assert (rr.registers[0] << 16 | rr.registers[1]) == 13 * 690 * 1000
        rr = await c.read_holding_registers(1299, count=1, device_id=255)
        assert chr(rr.registers[0] >> 8) == "C"
        rr = await c.read_holding_registers(1301, count=1, device_id=255)
        assert rr.registers == [13]
    finally:
        c.close()


@pytest.mark.parametrize("rig", ["abb_terra_ac"], indirect=True)
async def test_command_to_registers_end_to_end(rig, tmp_path):
    drv, sim, clock, _ = rig
    router = CommandRouter(CommandsConfig(), devices={"cp1": drv.config}, drivers={"cp1": drv},
                           ids=IdStore(tmp_path / "c.db", limit=100))
    sim.plug(Car(need_wh=50_000))
    out = await router.handle("cp1", orjson.dumps({"id": "1", "action": "set_current_limit", "value": 12.5}))
    assert out.status == "accepted"
    assert sim.writes[-1] == (0x4100, [0, 12500])  # uint32 mA, FC16
    out = await router.handle("cp1", orjson.dumps({"id": "2", "action": "set_current_limit", "value": 40}))
    assert out.result["code"] == "out_of_range" and sim.writes[-1] == (0x4100, [0, 12500])
    clock.t += 1
    assert (await values(drv))["current_l1"] == pytest.approx(12.5)


async def test_unreachable_charger_raises_typed_error():
    from agent.errors import DeviceError

    pool = BusPool({"lan": ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=free_port(), timeout=0.3)}, LINE_KINDS)
    cfg = ModbusChargerConfig(name="cp1", type="modbus_charger", line="lan", profile="charx", timeout=0.3)
    drv = ModbusChargerDriver(cfg, DriverContext("gw", Path("."), pool))
    with pytest.raises(DeviceError):
        await drv.read()
    await pool.close()


def test_profiles_load_and_config_errors():
    assert set(profile_names()) >= {"charx", "keba_p30", "abb_terra_ac"}
    for name in profile_names():
        assert load_profile(name).profile.name == name
    text = """
[gateway]
id = "gw"
[lines.lan]
type = "modbus_tcp"
host = "127.0.0.1"
[[devices]]
name = "cp1"
type = "modbus_charger"
line = "lan"
profile = "nope"
writable = ["current_limit", "fly"]
current_limit_bounds = [10, 6]
"""
    with pytest.raises(ConfigError) as e:
        load_config_text(text, source="site.toml")
    msg = str(e.value)
    assert "site.toml:11: devices[0] (cp1).profile: Value error, unknown charger profile 'nope'" in msg
    assert "site.toml:12: devices[0] (cp1).writable[1]: Input should be 'current_limit'" in msg
    fixed = text.replace('"nope"', '"charx"').replace(', "fly"', "")
    with pytest.raises(ConfigError, match="current_limit_bounds must be"):
        load_config_text(fixed, source="site.toml")
    ok = load_config_text(fixed.replace("[10, 6]", "[6, 16]"))
    assert ok.device("cp1").current_limit_bounds == (6, 16)
