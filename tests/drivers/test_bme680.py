"""BME680: the unmodified adafruit library over the register-level emulator, checked against the
Bosch datasheet's floating-point compensation formulas (BME680 datasheet section 3.3)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from agent.bus.base import BusPool
from agent.bus.i2c import I2cBus, I2cLineConfig
from agent.bus.kinds import LINE_KINDS
from agent.driver import DriverContext
from agent.errors import BusUnavailable, ConfigError, DeviceError, ProtocolError
from agent.simkit.i2c import I2cSimLineConfig
from drivers.bme680 import SPEC
from drivers.bme680.sim import Bme680Emulator, Calibration, RawValues

# Bosch float-formula constants for the gas resistance (datasheet table 16)
GAS_K1 = [1, 1, 1, 1, 1, 0.99, 1, 0.992, 1, 1, 0.998, 0.995, 1, 0.99, 1, 1]
GAS_K2 = [8000000, 4000000, 2000000, 1000000, 499500.4995, 248262.1648, 125000, 63004.03226, 31281.28128,
          15625, 7812.5, 3906.25, 1953.125, 976.5625, 488.28125, 244.140625]


def datasheet(c: Calibration, r: RawValues) -> dict[str, float]:
    """Compensation exactly as written in the datasheet (floating-point variant)."""
    t = r.temp_adc
    var1 = (t / 16384.0 - c.t1 / 1024.0) * c.t2
    var2 = ((t / 131072.0 - c.t1 / 8192.0) * (t / 131072.0 - c.t1 / 8192.0)) * (c.t3 * 16.0)
    t_fine = var1 + var2
    temp = t_fine / 5120.0

    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (c.p6 / 131072.0)
    var2 = var2 + var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var1 = ((c.p3 * var1 * var1) / 16384.0 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    p = 1048576.0 - r.press_adc
    p = ((p - var2 / 4096.0) * 6250.0) / var1
    var1 = (c.p9 * p * p) / 2147483648.0
    var2 = p * (c.p8 / 32768.0)
    var3 = (p / 256.0) ** 3 * (c.p10 / 131072.0)
    p = p + (var1 + var2 + var3 + c.p7 * 128.0) / 16.0

    var1 = r.hum_adc - (c.h1 * 16.0 + (c.h3 / 2.0) * temp)
    var2 = var1 * ((c.h2 / 262144.0) * (1.0 + (c.h4 / 16384.0) * temp + (c.h5 / 1048576.0) * temp * temp))
    var3 = c.h6 / 16384.0
    var4 = c.h7 / 2097152.0
    hum = min(100.0, max(0.0, var2 + (var3 + var4 * temp) * var2 * var2))

    var1 = (1340.0 + 5.0 * c.range_sw_err) * GAS_K1[r.gas_range]
    gas = var1 * GAS_K2[r.gas_range] / (r.gas_adc - 512.0 + var1)
    return {"temperature": temp, "pressure": p / 100.0, "humidity": hum, "gas_resistance": gas}


async def make(tmp_path, **cfg):
    pool = BusPool({"i2c": I2cSimLineConfig(type="i2c_sim", chip="bme680", vary=False)}, LINE_KINDS)
    config = SPEC.config_model(name="env", type="bme680", line="i2c", **cfg)
    return SPEC.factory(config, DriverContext("gw", tmp_path, pool)), pool


@pytest.mark.parametrize("raw", [
    RawValues(),
    RawValues(temp_adc=430_000, press_adc=350_000, hum_adc=26_000, gas_adc=300, gas_range=4),
    RawValues(temp_adc=600_000, press_adc=420_000, hum_adc=18_000, gas_adc=800, gas_range=9),
    RawValues(temp_adc=480_000, press_adc=300_000, hum_adc=30_000, gas_adc=120, gas_range=11),
])
async def test_library_over_emulator_matches_datasheet_compensation(tmp_path, raw):
    drv, pool = await make(tmp_path)
    await drv.open()
    emu: Bme680Emulator = pool.get("i2c").transport
    emu.raw = raw
    got = {s.metric: s.value for s in await drv.read()}
    want = datasheet(emu.calibration, raw)
    assert -40 < want["temperature"] < 85 and 300 < want["pressure"] < 1100  # plausible inputs
    assert got["temperature"] == pytest.approx(want["temperature"], abs=0.01)
    assert got["pressure"] == pytest.approx(want["pressure"], abs=0.02)
    assert got["humidity"] == pytest.approx(want["humidity"], abs=0.05)
    assert got["gas_resistance"] == pytest.approx(want["gas_resistance"], rel=0.002)
    assert emu.measurements == 1  # one forced measurement per read, all four values from it
    assert threading.get_ident() not in emu.threads  # I2C ran in worker threads, not the event loop
    await drv.close()
    await pool.close()


async def test_each_read_triggers_a_new_measurement(tmp_path):
    drv, pool = await make(tmp_path, gas=False)
    await drv.open()
    emu = pool.get("i2c").transport
    first = {s.metric: s.value for s in await drv.read()}
    assert set(first) == {"temperature", "humidity", "pressure"}
    emu.raw.temp_adc += 20_000
    await asyncio.sleep(0.11)  # the library's refresh_rate caches reads for 0.1 s
    second = {s.metric: s.value for s in await drv.read()}
    assert second["temperature"] > first["temperature"] + 1 and emu.measurements == 2
    await pool.close()


async def test_wrong_address_and_wrong_chip_are_typed_errors(tmp_path):
    bus = I2cBus("i2c", I2cLineConfig(type="i2c"), transport=Bme680Emulator(address=0x76))
    config = SPEC.config_model(name="env", type="bme680", line="i2c")
    drv = SPEC.factory(config, DriverContext("gw", tmp_path, {"i2c": bus}))
    with pytest.raises(DeviceError, match="BME680 not found.*0x77"):
        await drv.open()
    bus = I2cBus("i2c", I2cLineConfig(type="i2c"), transport=Bme680Emulator(chip_id=0x60))
    drv = SPEC.factory(config, DriverContext("gw", tmp_path, {"i2c": bus}))
    with pytest.raises(ProtocolError, match="not a BME680"):
        await drv.open()


async def test_no_i2c_hardware_is_bus_unavailable(tmp_path):
    pool = BusPool({"i2c": I2cLineConfig(type="i2c", bus=7)}, LINE_KINDS)
    drv = SPEC.factory(SPEC.config_model(name="env", type="bme680", line="i2c"), DriverContext("gw", tmp_path, pool))
    with pytest.raises(BusUnavailable, match="/dev/i2c-7"):
        await drv.open()


def test_import_works_without_blinka_or_circuitpython_modules():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"busio", "digitalio", "micropython", "circuitpython_typing", "board"}:
                    raise ImportError(f"blocked {name}")
        sys.meta_path.insert(0, Block())
        from drivers.bme680.driver import import_adafruit_bme680
        from drivers.bme680.sim import Bme680Emulator
        lib = import_adafruit_bme680()
        s = lib.Adafruit_BME680_I2C(Bme680Emulator(), refresh_rate=10)
        print(round(s.temperature, 2))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(datasheet(Calibration(), RawValues())["temperature"], abs=0.01)


def test_config_checks_address():
    from agent.config.loader import load_config_text

    text = """
[gateway]
id = "gw"
[lines.i2c]
type = "i2c"
[[devices]]
name = "env"
type = "bme680"
line = "i2c"
address = 0x75
"""
    with pytest.raises(ConfigError, match="address"):
        load_config_text(text)
