"""modbus_meter driver end to end: real pymodbus simulators over TCP and RTU, config errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent.bus import LINE_KINDS, BusPool
from agent.config import load_config_text
from agent.contract.modbus_values import encode
from agent.driver import DriverCatalog, DriverContext, discover_simulators
from agent.errors import ConfigError, DeviceTimeout
from agent.model import MetricKind, Quality
from drivers.modbus_meter.codec import profile_names
from drivers.modbus_meter.sim import Fault, start

PROFILES = ["sdm630", "sdm120", "ddsu666", "dtsu666", "senseair_s8"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_toml(kind: str, port: int) -> str:  # 10 s: a loaded machine; only a dead unit waits it out
    if kind == "tcp":
        return f'type = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 10'
    return f'type = "modbus_rtu"\nport = "socket://127.0.0.1:{port}"\ntimeout = 10\nunit_backoff_max = 1'


def config(device: str, *, kind: str = "rtu", port: int = 1) -> str:
    return f'[gateway]\nid = "g"\n[lines.rs485-1]\n{line_toml(kind, port)}\n[[devices]]\nname = "m"\ntype = "modbus_meter"\nline = "rs485-1"\n{device}\n'


class Rig:
    def __init__(self, text: str, tmp: Path):
        self.cfg = load_config_text(text)
        self.pool = BusPool(self.cfg.lines, LINE_KINDS)
        spec = DriverCatalog.discover().get("modbus_meter")
        self.drivers = [spec.factory(d, DriverContext(gateway="g", state_dir=tmp, buses=self.pool)) for d in self.cfg.devices]
        self.driver = self.drivers[0]

    async def read(self, i: int = 0) -> tuple[dict[str, float], dict[str, int]]:
        d = self.drivers[i]
        b = await d.read()
        names = [m.name for m in d.metrics()]
        assert b.series.tolist() == list(range(len(names)))
        return dict(zip(names, b.value.tolist(), strict=True)), dict(zip(names, b.quality.tolist(), strict=True))


def test_profiles_and_simulators_are_registered():
    assert set(PROFILES) <= set(profile_names())
    sims = discover_simulators()
    assert set(PROFILES) <= set(sims)
    assert DriverCatalog.discover().get("modbus_meter") is not None


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
@pytest.mark.parametrize("profile", PROFILES)
async def test_every_profile_decodes_the_simulator_exactly(profile, kind, tmp_path):
    port = free_port()
    sim = await discover_simulators()[profile].start(update_interval=None, **(
        {"tcp": f"127.0.0.1:{port}"} if kind == "tcp" else {"rtu_socket": f"127.0.0.1:{port}"}))
    rig = Rig(config(f'profile = "{profile}"', kind=kind, port=port), tmp_path)
    try:
        values, quality = await rig.read()
        assert values == sim.values  # float32 rounding and scaling applied identically: exact equality
        assert set(quality.values()) == {0}
        await sim.step(3600.0)  # an hour later: counters grew, nothing else is stale
        later, _ = await rig.read()
        assert later == sim.values
        for m in rig.driver.metrics():
            if m.kind is MetricKind.COUNTER:
                assert later[m.name] >= values[m.name]
        if "energy_import" in values:
            assert later["energy_import"] > values["energy_import"]
        diag = rig.driver.diagnostics()
        assert diag["transactions_per_cycle"] == len(diag["plan"]) and diag["cycles"] == 2
        assert diag["bus_unit"]["transactions"] == 2 * diag["transactions_per_cycle"]
        assert diag["bus_unit"] == rig.driver.bus.stats()["units"][rig.driver.config.unit]  # its unit's, as the line's
        assert rig.driver.bus.unit_stats(rig.driver.config.unit + 1) == {}  # a unit never read: nothing
        assert (diag["wire_time_estimate_s"] is None) == (kind == "tcp")
    finally:
        await rig.pool.close()
        await sim.stop()


async def test_values_are_realistic(tmp_path):
    port = free_port()
    sim = await start(profile="sdm630", rtu_socket=f"127.0.0.1:{port}", update_interval=None)
    rig = Rig(config('profile = "sdm630"', port=port), tmp_path)
    try:
        v, _ = await rig.read()
        assert all(220 < v[f"voltage_{p}"] < 240 for p in ("l1", "l2", "l3"))
        assert 49.9 < v["frequency"] < 50.1
        assert v["power_total"] > 0 and abs(v["power_l1"] + v["power_l2"] + v["power_l3"] - v["power_total"]) < 1
        assert 380 < v["voltage_l1_l2"] < 420
    finally:
        await rig.pool.close()
        await sim.stop()


async def test_metric_subset_reads_less(tmp_path):
    port = free_port()
    sim = await start(profile="sdm630", tcp=f"127.0.0.1:{port}", update_interval=None)
    rig = Rig(config('profile = "sdm630"\nmetrics = ["power_total", "energy_import", "frequency"]', kind="tcp", port=port), tmp_path)
    try:
        v, _ = await rig.read()
        assert v == {k: sim.values[k] for k in ("power_total", "frequency", "energy_import")}
        assert rig.driver.diagnostics()["plan"] == ["FC04 0x0034+22"]
    finally:
        await rig.pool.close()
        await sim.stop()


@pytest.mark.parametrize("base", ["0x1000", "0x4000"])
async def test_dtsu666_energy_base_is_configurable(base, tmp_path):
    port = free_port()
    sim = await start(profile="dtsu666", rtu_socket=f"127.0.0.1:{port}", update_interval=None)
    rig = Rig(config(f'profile = "dtsu666"\nenergy_base = "{base}"', port=port), tmp_path)
    try:
        v, _ = await rig.read()
        assert v["energy_import"] == sim.values["energy_import"] > 0
        assert f"FC03 0x{int(base, 16) + 0x1E:04X}+8" in rig.driver.diagnostics()["plan"]
    finally:
        await rig.pool.close()
        await sim.stop()


async def test_senseair_status_bits_flag_the_co2_value(tmp_path):
    port = free_port()
    sim = await start(profile="senseair_s8", rtu_socket=f"127.0.0.1:{port}", update_interval=None)
    rig = Rig(config('profile = "senseair_s8"', port=port), tmp_path)
    try:
        assert rig.cfg.devices[0].unit == 254
        v, q = await rig.read()
        assert 400 <= v["co2"] < 1000 and q["co2"] == 0
        await sim.pin(254, "meter_status", 0x0004)
        v, q = await rig.read()
        assert v["meter_status"] == 4 and q["co2"] == Quality.DEVICE_FLAGGED
    finally:
        await rig.pool.close()
        await sim.stop()


async def test_inline_registers_with_scale_offset_and_word_order(tmp_path):
    port = free_port()
    sim = await start(profile="sdm120", rtu_socket=f"127.0.0.1:{port}", update_interval=None)
    regs = """
[[devices.registers]]
name = "power_kw"
address = "0x000C"
scale = 0.001
unit = "kW"
[[devices.registers]]
name = "freq_raw_hi"
address = 0x46
type = "uint16"
offset = -1
"""
    rig = Rig(config(regs, port=port), tmp_path)
    try:
        v, _ = await rig.read()
        assert v["power_kw"] == sim.values["power"] * 0.001
        assert v["freq_raw_hi"] == encode(sim.values["frequency"], "float32")[0] - 1  # high word, as uint16
    finally:
        await rig.pool.close()
        await sim.stop()


async def test_dead_meter_fails_its_poll_but_neighbours_read(tmp_path):
    port = free_port()
    sim = await start(units={1: "sdm120", 2: "sdm630"}, rtu_socket=f"127.0.0.1:{port}", update_interval=None)
    text = config('profile = "sdm120"\nunit = 1', port=port) + '[[devices]]\nname = "n"\ntype = "modbus_meter"\nline = "rs485-1"\nprofile = "sdm630"\nunit = 2\n'
    rig = Rig(text, tmp_path)
    try:
        sim.set_fault(1, Fault.DEAD)
        with pytest.raises(DeviceTimeout):
            await rig.read(0)
        with pytest.raises(DeviceTimeout, match="skipped"):  # backed off: no wire time spent
            await rig.read(0)
        v, _ = await rig.read(1)
        assert v == sim.values_of(2)
        assert rig.pool.get("rs485-1").stats()["units"][1]["timeouts"] == 1
    finally:
        await rig.pool.close()
        await sim.stop()


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ('profile = "sdm999"', "devices[0] (m).profile: Value error, unknown profile 'sdm999'"),
        ('profile = "sdm630"\nmetrics = ["voltage_l9"]', "metrics: Value error, unknown metric(s) 'voltage_l9'"),
        ('profile = "sdm630"\nenergy_base = "0x1000"', "energy_base: Value error, profile 'sdm630' has no energy_base"),
        ('profile = "dtsu666"\nenergy_base = "0x2000"', "energy_base: Value error, must be one of 0x1000, 0x4000"),
        ('unit = 1', "give profile"),
        ('[[devices.registers]]\nname = "x"\naddress = 1\ntype = "float16"', "registers[0].type"),
        ('[[devices.registers]]\nname = "x"\naddress = 70000', "registers[0].address"),
        ('[[devices.registers]]\nname = "x"\naddress = "0xZZ"', "registers[0].address"),
        ('[[devices.registers]]\nname = "x"\naddress = 1\norder = "ABDC"', "registers[0].order"),
        ('[[devices.registers]]\nname = "x"\naddress = 1\nfc = 5', "registers[0].fc"),
        ('[[devices.registers]]\nname = "x"\naddress = 1\n[[devices.registers]]\nname = "x"\naddress = 3', "repeats the name 'x'"),
        ('profile = "sdm120"\n[[devices.registers]]\nname = "voltage"\naddress = 1', "repeats the name 'voltage'"),
        ('profile = "sdm120"\nbaud = 9600', "devices[0] (m).baud: unknown key"),
        ('profile = "sdm120"\nmax_registers = 200', "max_registers"),
    ],
)
def test_config_errors_name_the_key(device, expected):
    with pytest.raises(ConfigError) as ei:
        load_config_text(config(device))
    assert expected in str(ei.value), str(ei.value)


def test_wrong_line_kind_is_refused():
    text = '[gateway]\nid = "g"\n[lines.l]\ntype = "modbus_tcp"\nhost = "h"\n[lines.l2]\ntype = "modbus_rtu"\nport = "/dev/ttyUSB0"\ntimeout = -1\n'
    with pytest.raises(ConfigError, match=r"lines.l2.timeout"):
        load_config_text(text)



async def test_the_health_reports_bus_counters_count_every_request_of_a_poll(tmp_path):
    """The line counters the health report's ``buses`` section carries (BusPool.stats): an SDM630's
    poll is several register blocks on one Modbus TCP line, each request counted in full."""
    port = free_port()
    sim = await discover_simulators()["sdm630"].start(update_interval=None, tcp=f"127.0.0.1:{port}")
    rig = Rig(config('profile = "sdm630"', kind="tcp", port=port), tmp_path)
    try:
        for _ in range(2):
            await rig.read()
        line = rig.pool.stats()["rs485-1"]
        assert line["transactions"] >= 2 * 3 and line["transactions"] % 2 == 0  # the same blocks each poll
        assert line["bytes_tx"] == 12 * line["transactions"]  # an MBAP read request is 12 bytes
    finally:
        await rig.pool.close()
        await sim.stop()
