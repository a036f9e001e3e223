"""What a meter poll returns for values a device cannot mean: a NaN, a signalling NaN or an infinity
read from the simulated SDM630 (a real pymodbus server over TCP) is kept as NaN or infinity and flagged
``device_flagged``; every other value of the poll is the meter's, unflagged, and nothing warns."""

from __future__ import annotations

import math
import warnings

import numpy as np

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus.base import BusPool
from agent.config import load_config_text
from agent.contract import Quality
from agent.driver import DriverCatalog, DriverContext
from drivers.modbus_meter.sim import start
from tests.test_modbus_pipelining import free_port

ODD = {"voltage_l1": 0x7F80_0001, "voltage_l2": 0x7F80_0000, "voltage_l3": 0x7FC0_0000}  # sNaN, +inf, NaN


async def test_a_nan_or_infinity_from_the_meter_is_flagged_and_the_rest_of_the_poll_is_good(tmp_path):
    port = free_port()
    h = await start(tcp=f"127.0.0.1:{port}", update_interval=None)
    config = load_config_text(
        f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n'
        f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
        '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "meters"\nunit = 1\n')
    buses = BusPool(config.lines)
    dev = config.devices[0]
    driver = DriverCatalog.discover().get(dev.type).factory(dev, DriverContext(gateway="gw", state_dir=tmp_path,
                                                                                buses=buses))
    try:
        names = [m.name for m in driver.metrics()]
        for name, bits in ODD.items():
            address = next(r.address for r in driver.registers if r.name == name)
            await h.server.async_setValues(1, 4, address, [bits >> 16, bits & 0xFFFF])
        good = h.values
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            batch = await driver.read()
        got = dict(zip(names, batch.value.tolist(), strict=True))
        flags = dict(zip(names, batch.quality.tolist(), strict=True))
        assert math.isnan(got["voltage_l1"]) and got["voltage_l2"] == math.inf and math.isnan(got["voltage_l3"])
        assert all(flags[n] == int(Quality.DEVICE_FLAGGED) for n in ODD)
        rest = [n for n in names if n not in ODD]
        assert all(flags[n] == 0 for n in rest), {n: flags[n] for n in rest if flags[n]}
        assert all(got[n] == np.float32(good[n]) for n in rest), {n: (got[n], good[n]) for n in rest}
        assert batch.ts.tolist() == [batch.ts[0]] * len(names) and batch.ts.dtype == np.int64
        await h.server.async_setValues(1, 4, 0, [0x4366, 0x3333])  # 230.2 V: the poll after is clean
        batch = await driver.read()
        assert batch.value[names.index("voltage_l1")] == np.float32(230.2)
        assert batch.quality[names.index("voltage_l1")] == 0
    finally:
        await buses.close()
        await h.stop()
