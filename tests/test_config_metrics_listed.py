"""Validation lists a device's metrics from its config (``DriverSpec.metrics``) without building the
driver: the same metrics and the same problems as building it, without numpy or the line's bus.

The metrics a driver built from a config delivers are what its spec lists for that config (every
built-in driver that lists them, over its profiles and options); a driver that cannot be set up from
its config is reported as before; a driver without a list is built, as a third-party one may be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config_text
from agent.config.validate import validate
from agent.contract import DeviceConfig, DriverContext, DriverSpec, MetricSpec
from agent.driver import DriverCatalog
from agent.errors import ConfigError
from drivers.modbus_charger.profile import profile_names as charger_profiles
from drivers.modbus_meter.codec import profile_names as meter_profiles
from drivers.pv_inverter.profile import profile_names as inverter_profiles

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "drivers" / "replay" / "samples" / "building_load_kw.csv"
HEAD = '[gateway]\nid = "gw"\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\n'
LINES = ('[lines.m]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = 1502\n'
         '[lines.air]\ntype = "serial"\nport = "/dev/ttyNOPE"\n'
         '[lines.air2]\ntype = "serial"\nport = "/dev/ttyNOPE2"\n'
         '[lines.air3]\ntype = "serial"\nport = "/dev/ttyNOPE3"\n'
         '[lines.g]\ntype = "gpio_sim"\n'
         '[lines.i2c]\ntype = "i2c_sim"\nchip = "bme680"\n')
# (type, its keys): the built-in drivers that list their metrics, over their profiles and options
DEVICES = [
    ("replay", f'file = "{SAMPLE}"'),
    ("replay", f'file = "{SAMPLE}"\nmetric = "power"\nunit = "kW"'),
    *[("modbus_meter", f'line = "m"\nunit = UNIT\nprofile = "{p}"') for p in meter_profiles()],
    ("modbus_meter", 'line = "m"\nunit = UNIT\nprofile = "sdm630"\nmetrics = ["power_total", "energy_import"]'),
    ("modbus_meter", 'line = "m"\nunit = UNIT\nregisters = [{name = "t", address = 4, type = "int16", scale = 0.1}]'),
    *[("modbus_charger", f'line = "m"\nunit = UNIT\nprofile = "{p}"') for p in charger_profiles()],
    ("pms5003", 'line = "air"'),
    *[("pulse_counter", f'line = "g"\npin = 4\nquantity = "{q}"') for q in ("energy", "volume", "gas", "count")],
    ("bme680", 'line = "i2c"'),
    ("bme680", 'line = "i2c"\ngas = false'),
    ("sds011", 'line = "air2"'),
    ("mhz19", 'line = "air3"'),
    ("mhz19", 'line = "air3"\ndetection_range = 2000'),
    ("digital_input", 'line = "g"\npin = 5'),
    ("sunspec", 'line = "m"\nunit = UNIT\nmodels = [103, 123, 124, 802, 203]'),
    ("sunspec", 'line = "m"\nunit = UNIT\nmodels = [701, 702, 704, 713, 201]'),
    *[("pv_inverter", f'line = "m"\nunit = UNIT\nprofile = "{p}"') for p in inverter_profiles()],
    ("pv_inverter", 'line = "m"\nunit = UNIT\nprofile = "sungrow_sh"\nmetrics = ["pv_power", "battery_power", "energy_import"]'),
]


def config_of(tmp_path: Path, devices: list[tuple[str, str]]) -> str:
    body = "".join(f'[[devices]]\nname = "d{i}"\ntype = "{t}"\n{keys.replace("UNIT", str(i + 1))}\n'
                   for i, (t, keys) in enumerate(devices))  # a Modbus unit id of its own
    return HEAD.format(state=tmp_path / "state") + LINES + body


def test_every_listed_driver_lists_what_it_builds(tmp_path: Path) -> None:
    cfg = load_config_text(config_of(tmp_path, DEVICES))
    catalog = DriverCatalog.discover()
    from agent.bus import BusPool

    ctx = DriverContext(gateway="gw", state_dir=tmp_path, buses=BusPool(cfg.lines))
    for dev in cfg.devices:
        spec = catalog.get(dev.type)
        assert spec is not None and spec.metrics is not None, f"{dev.type} lists no metrics"
        listed = list(spec.metrics(dev))
        assert listed and all(isinstance(m, MetricSpec) for m in listed)
        assert listed == list(spec.factory(dev, ctx).metrics()), dev.type


BAD = [  # a driver that cannot be set up, and metrics named that a device does not have (same text as before)
    ("modbus_meter", 'line = "m"\nunit = UNIT\nprofile = "sdm630"\nmax_registers = 1\nmetrics = ["voltage_l1"]'),
    ("replay", f'file = "{SAMPLE}"\nmetric = "power"\nanomaly = ["powr"]\n[devices.checks.nope]\nmax = 3'),
    ("pms5003", 'line = "air"\nanomaly = ["pm25"]'),
    ("pulse_counter", 'line = "g"\npin = 4\nquantity = "volume"\nanomaly = ["energy"]'),
    ("bme680", 'line = "i2c"\ngas = false\nanomaly = ["gas_resistance"]'),
    ("modbus_charger", 'line = "m"\nunit = UNIT\nprofile = "charx"\nanomaly = ["power_kw"]'),
]
BAD_SAYS = [
    "devices[0] (d0): driver 'modbus_meter' cannot be set up: a 2-register value at 0 exceeds max_registers=1",
    "devices[1] (d1).checks.nope: device has no metric 'nope' (has: power)",
    "devices[1] (d1).anomaly[0]: device has no metric 'powr' (did you mean 'power'? has: power)",
    "devices[2] (d2).anomaly[0]: device has no metric 'pm25' (did you mean 'pm2_5'? has: pm1_0, pm2_5, pm10, "
    "pm1_0_cf1, pm2_5_cf1, pm10_cf1, gt0_3um, gt0_5um, gt1_0um, gt2_5um, gt5_0um, gt10um)",
    "devices[3] (d3).anomaly[0]: device has no metric 'energy' (has: pulses, rejected_edges, volume, flow)",
    "devices[4] (d4).anomaly[0]: device has no metric 'gas_resistance' (has: temperature, humidity, pressure)",
    "devices[5] (d5).anomaly[0]: device has no metric 'power_kw' (did you mean 'power' or 'power_l3' or 'power_l2'? "
    "it has 15 metrics: state, connected, charging, enabled, current_limit, current_l1, ...)",
]


def test_problems_with_metrics_are_reported_as_building_the_drivers_did(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config_of(tmp_path, BAD))
    with pytest.raises(ConfigError) as exc:
        validate(path, at_run=True, env={})
    assert [p.split(": ", 1)[1] for p in exc.value.problems] == BAD_SAYS


def test_check_lists_metrics_without_numpy_or_buses(tmp_path: Path) -> None:
    """`check` (and `run`'s validation) of a config of listed drivers imports no numpy and no bus: the
    run-time process imports them beside it."""
    path = tmp_path / "c.toml"
    path.write_text(config_of(tmp_path, DEVICES))
    code = ("import sys\nfrom agent.config.validate import validate\n"
            f"validate({str(path)!r}, at_run=True)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numpy' or m in "
            "('agent.bus.modbus', 'agent.bus.serial_port', 'serial', 'pymodbus')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


class _Thermo:
    def __init__(self, config: DeviceConfig, ctx: DriverContext):
        if config.name == "broken":
            raise ValueError("no sensor table for this model")

    def metrics(self) -> list[MetricSpec]:
        return [MetricSpec("temperature", "degC")]


class ThermoConfig(DeviceConfig):
    type: str = "thermo"


def test_a_driver_without_a_list_is_built(tmp_path: Path) -> None:
    spec = DriverSpec(type="thermo", config_model=ThermoConfig, factory=_Thermo, summary="a third-party driver")
    assert spec.metrics is None
    text = (HEAD.format(state=tmp_path / "state") + '[[devices]]\nname = "ok"\ntype = "thermo"\nanomaly = ["temp"]\n'
            '[[devices]]\nname = "broken"\ntype = "thermo"\n')
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        validate(path, at_run=True, env={}, catalog=DriverCatalog({"thermo": spec}))
    assert [p.split(": ", 1)[1] for p in exc.value.problems] == [
        "devices[1] (broken): driver 'thermo' cannot be set up: no sensor table for this model",
        "devices[0] (ok).anomaly[0]: device has no metric 'temp' (has: temperature)",
    ]
