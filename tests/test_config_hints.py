"""'Did you mean' hints in `edge-agent check` for misspelt keys, sections, types, profiles and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli

BASE = """[gateway]
id = "gw1"
[mqtt]
host = "127.0.0.1"
[lines.tcp]
type = "modbus_tcp"
host = "127.0.0.1"
port = 1502
"""
METER = '[[devices]]\nname = "m"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "tcp"\n'

CASES = {
    "section key": ("[health]\nintervall = 10\n", "health.intervall: unknown key (not part of this section's schema); "
                    "did you mean 'interval'?"),
    "nested section key": ('[mqtt.tls]\nca_fille = "/x.pem"\n', "mqtt.tls.ca_fille: unknown key (not part of this "
                           "section's schema); did you mean 'ca_file'?"),
    "section": ("[helth]\ninterval = 10\n", "helth: unknown section (expected one of: "),
    "line key": ('[lines.rtu]\ntype = "modbus_rtu"\nport = "/dev/ttyUSB0"\nbaud = 9600\n',
                 "lines.rtu.baud: unknown key (not part of this section's schema); did you mean 'baudrate'?"),
    "line type": ('[lines.rtu]\ntype = "modbus-rtu"\nport = "/dev/ttyUSB0"\n', "did you mean 'modbus_rtu'?"),
    "device key": (METER + "poll_intervall = 3\n", "devices[0] (m).poll_intervall: unknown key (not part of this "
                   "section's schema); did you mean 'poll_interval'?"),
    "device table key": (METER + "[devices.checks.voltage_l1]\nmn = 180\n",
                         "devices[0] (m).checks.voltage_l1.mn: unknown key (not part of this section's schema); "
                         "did you mean 'min'?"),
    "device type": ('[[devices]]\nname = "m"\ntype = "modbus_metre"\nline = "tcp"\n',
                    "devices[0] (m).type: unknown device type 'modbus_metre' (installed drivers: "),
    "meter profile": (METER.replace("sdm630", "sdm63O"), "unknown profile 'sdm63O' (known: "),
    "charger profile": ('[[devices]]\nname = "c"\ntype = "modbus_charger"\nprofile = "charks"\nline = "tcp"\n',
                        "unknown charger profile 'charks' (known: abb_terra_ac, charx, keba_p30); did you mean 'charx'?"),
    "metric list": (METER + 'metrics = ["frequncy"]\n', "unknown metric(s) 'frequncy'; did you mean 'frequency'?"),
    "check metric": (METER + "[devices.checks.voltag_l1]\nmin = 180\n",
                     "devices[0] (m).checks.voltag_l1: device has no metric 'voltag_l1' (did you mean 'voltage_l1'?"),
    "energy metric": ('[[devices]]\nname = "m"\ntype = "modbus_meter"\nprofile = "sdm120"\nline = "tcp"\n'
                                   'energy = { metric = "energy_imprt" }\n',
                                   "device has no metric 'energy_imprt' (did you mean 'energy_import'? it has 22 metrics"),
}
HINTS = {"section": "did you mean 'health'?", "device type": "did you mean 'modbus_meter'?",
         "meter profile": "did you mean 'sdm630'?"}


@pytest.mark.parametrize("case", list(CASES))
def test_check_suggests_the_name_meant(case: str, tmp_path: Path) -> None:
    body, expected = CASES[case]
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + body)
    r = CliRunner().invoke(cli, ["check", "--config", str(cfg)])
    assert r.exit_code == 2, r.output
    assert expected in r.output, r.output
    if case in HINTS:
        line = next(li for li in r.output.splitlines() if expected in li)
        assert line.rstrip().endswith(HINTS[case]), line


def test_no_hint_when_nothing_is_close(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + "[health]\nzzz = 1\n")
    r = CliRunner().invoke(cli, ["check", "--config", str(cfg)])
    assert r.exit_code == 2
    assert "health.zzz: unknown key (not part of this section's schema)\n" in r.output
    assert "did you mean" not in r.output
