"""Simulated devices for the demo: each starter returns the config text for its devices and a
handle to stop it. Every simulator is the same one `edge-agent simulate` starts."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from .broker import free_port


@dataclass
class DemoSims:
    toml: list[str] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list)
    site_toml: str = ""  # top-level tables must follow the devices in the file
    unavailable: dict[str, str] = field(default_factory=dict)  # device -> why it is left out

    async def stop(self) -> None:
        for h in reversed(self.handles):
            try:
                await h.stop()
            except Exception:  # noqa: BLE001 - stopping one simulator must not stop the others
                pass


async def start_meters(sims: DemoSims) -> None:
    """A three-phase SDM630 (unit 1) and a single-phase SDM120 (unit 2) on one RS-485 line (RTU framing)."""
    from drivers.modbus_meter.sim import start

    port = free_port()
    sims.handles.append(await start(units={1: "sdm630", 2: "sdm120"}, rtu_socket=f"127.0.0.1:{port}"))
    sims.toml.append(f'''
[lines.rs485-1]
type = "modbus_rtu"
port = "socket://127.0.0.1:{port}"
baudrate = 9600

[[devices]]
name = "main-meter"
type = "modbus_meter"
profile = "sdm630"
metrics = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "power_total", "energy_import", "frequency"]
unit = 1
line = "rs485-1"
poll_interval = 2.0

[[devices]]
name = "lighting-meter"
type = "modbus_meter"
profile = "sdm120"
metrics = ["voltage", "current", "power", "energy_import"]
unit = 2
line = "rs485-1"
poll_interval = 2.0
''')


async def start_station(sims: DemoSims) -> None:
    """A charging station: a grid meter and four CHARX chargers with cars arriving, under a 40 kW
    site limit, capped at 11 kW in time-of-use peak hours (so charging shows at any hour of the
    day); time runs 60x so sessions start and finish within the demo."""
    from drivers.modbus_charger.station import start_station as start

    meter_port, charger_port = free_port(), free_port()
    sims.handles.append(await start(meter_tcp=f"127.0.0.1:{meter_port}", chargers_tcp=f"127.0.0.1:{charger_port}",
                                    chargers=4, speed=60, base_load_w=12000))
    sims.toml.append(f'''
[lines.station-meter]
type = "modbus_tcp"
host = "127.0.0.1"
port = {meter_port}

[lines.station-chargers]
type = "modbus_tcp"
host = "127.0.0.1"
port = {charger_port}

[[devices]]
name = "grid"
type = "modbus_meter"
profile = "sdm630"
metrics = ["power_total", "energy_import"]
unit = 1
line = "station-meter"
poll_interval = 1.0
''')
    for i in range(1, 5):
        sims.toml.append(f'''
[[devices]]
name = "bay{i}"
type = "modbus_charger"
profile = "charx"
unit = {i}
line = "station-chargers"
poll_interval = 1.0
publish = "both"
writable = ["current_limit"]
''')
    sims.site_toml = '''
[site]
chargers = ["bay1", "bay2", "bay3", "bay4"]
limit_kw = 40
safe_current = 6

[site.tou]
peak_max_kw = 11  # in peak hours the cars share 11 kW (the default, 0, would pause them until peak ends)

[site.grid_meter]
device = "grid"
metric = "power_total"
'''


async def start_environment(sims: DemoSims) -> None:
    """Air and environment: a PMS5003 on a pty, an emulated BME680 on I2C, a water meter's pulses.

    The BME680 needs the adafruit-circuitpython-bme680 library (the ``demo`` extra); without it the
    device is left out and reported as unavailable.
    """
    from drivers.pms5003.sim import start

    pms = await start(link=None, active=True, vary=True)
    sims.handles.append(pms)
    sims.toml.append(f'''
[lines.pm-uart]
type = "serial"
port = "{pms.path}"
baudrate = 9600

[lines.gpio]
type = "gpio_sim"
pulse_hz = {{17 = 2.0}}

[[devices]]
name = "lobby-pm"
type = "pms5003"
line = "pm-uart"
poll_interval = 2.0

[[devices]]
name = "water-meter"
type = "pulse_counter"
line = "gpio"
pin = 17
pulses_per_unit = 100
poll_interval = 2.0
''')
    if importlib.util.find_spec("adafruit_bme680") is None:
        sims.unavailable["lobby-climate"] = ("BME680 library missing: python3 -m pip install -e '.[demo]' "
                                             "(adafruit-circuitpython-bme680)")
    else:
        sims.toml.append('''
[lines.i2c-1]
type = "i2c_sim"
chip = "bme680"

[[devices]]
name = "lobby-climate"
type = "bme680"
line = "i2c-1"
poll_interval = 3.0
''')


STARTERS = [start_meters, start_environment, start_station]
