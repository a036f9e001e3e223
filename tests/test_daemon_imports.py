"""What the service process loads (its memory): ``edge-agent run`` imports its own command, not every
other command of the CLI, and a config without a ``[site]`` table does not load the site controller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from process_probe import probe

CONFIG = """
[gateway]
id = "gw"
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"

[[devices]]
name = "load"
type = "replay"
file = "{csv}"
"""


def loaded_after_start(tmp_path: Path, config: str) -> set[str]:
    """Modules loaded by the run command's module, the config and the agent's construction (no devices polled)."""
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,value\n2026-01-01T00:00:00,1.5\n")
    path = tmp_path / "agent.toml"
    path.write_text(config.format(state=tmp_path / "state", csv=csv))
    code = ("import sys\n"
            "from agent.cli.main import cli\n"
            "cli.get_command(None, 'run')\n"
            "from agent.config.loader import load_config\n"
            "from agent.app import Agent\n"
            f"Agent(load_config({str(path)!r}))\n"
            "print(' '.join(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_run_loads_neither_other_commands_nor_the_site_controller_it_does_not_use(tmp_path: Path) -> None:
    mods = loaded_after_start(tmp_path, CONFIG)
    assert "agent.cli.cmd_run" in mods and "agent.app" in mods
    others = sorted(m for m in mods if m.startswith("agent.cli.cmd_") and m not in ("agent.cli.cmd_run", "agent.cli.cmd_check"))
    assert others == []
    assert "agent.site.controller" not in mods and "agent.site.allocator" not in mods


def test_the_site_names_still_import_from_the_package() -> None:
    r = subprocess.run([sys.executable, "-c", "from agent.site import Demand, SiteConfig, SiteController, allocate, "
                        "fair_share; print(SiteController.__module__, allocate.__module__)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["agent.site.controller", "agent.site.allocator"]


MODBUS_LINE = """
[lines.meters]
type = "{kind}"
host = "127.0.0.1"
port = 1502
"""


def test_run_loads_only_the_line_kinds_its_config_uses(tmp_path: Path) -> None:
    # every installed line kind used to be imported at start: the OCPP central system pulled in the OCPP
    # charger driver, its session and transaction store on gateways without a single OCPP charger
    mods = loaded_after_start(tmp_path, CONFIG + MODBUS_LINE.format(kind="modbus_tcp"))
    assert "agent.bus.modbus_config" in mods  # its line kind (pymodbus comes when the line is opened)
    assert not any(m.startswith(("drivers.ocpp_charger", "drivers.charger_common")) for m in mods)
    assert not any(m.startswith("agent.simkit") for m in mods)  # the simulated I2C and GPIO lines


def test_a_config_with_an_ocpp_line_still_loads_it(tmp_path: Path) -> None:
    mods = loaded_after_start(tmp_path, CONFIG + '\n[lines.cs]\ntype = "ocpp"\nport = 9000\n')
    assert "drivers.ocpp_charger.server" in mods


# Loaded by other commands or only when something goes wrong; each costs a running agent memory
# (difflib: the "did you mean" hints of a config error, a fifth of a MiB).
ONLY_ELSEWHERE = ("difflib", "rich", "sqlite_utils", "hypothesis", "websockets", "ocpp", "amqtt", "agent.demo",
                  "agent.doctor", "agent.docgen", "agent.fleet", "agent.ingest", "agent.simkit")


def test_a_running_agent_loads_nothing_only_other_paths_need(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                               warmed_kernel_cache) -> None:
    # the real service: `edge-agent run` publishing, stopped by SIGTERM; the modules of its run-time process
    # (agent.runtime), listed at exit
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,value\n" + "".join(f"2026-01-01T00:0{i}:00,{i}.5\n" for i in range(5)))
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", csv=csv).replace(
        'host = "127.0.0.1"', f'host = "{mosquitto.host}"\nport = {mosquitto.port}'))
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    seen = probe(tmp_path / "probe")
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=seen.env())
    try:
        sub.wait_for(1, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    mods = set(seen.records("exit")[-1]["modules"])
    assert "agent.uplink.mqtt" in mods and "agent.app" in mods  # it did run
    assert sorted(m for m in mods if any(m == p or m.startswith(p + ".") for p in ONLY_ELSEWHERE)) == []
    assert {m for m in mods if m.startswith("agent.web")} <= {"agent.web", "agent.web.config", "agent.web.listen"}  # its section only


SERIAL_SENSOR = """
[lines.uart]
type = "serial"
port = "/dev/ttyUSB0"

[[devices]]
name = "pm"
type = "pms5003"
line = "uart"
"""


def test_a_config_without_a_modbus_line_does_not_load_pymodbus(tmp_path: Path) -> None:
    # the serial, I2C and GPIO line kinds share a module with the Modbus ones: pymodbus came with them (≈ 2.5 MB)
    mods = loaded_after_start(tmp_path, CONFIG + SERIAL_SENSOR)
    assert "agent.bus.serial_port" in mods
    assert not any(m.startswith(("pymodbus", "agent.bus.modbus.", "agent.bus.mbap")) or m == "agent.bus.modbus"
                   for m in mods)


def test_a_modbus_tcp_line_is_polled_without_pymodbus(tmp_path: Path) -> None:
    # the agent's own client reads Modbus TCP; pymodbus (33 modules, its simulator and datastore among
    # them, ≈ 0.8 MB) was imported for its exception types alone
    code = """
import asyncio, socket, sys
from agent.bus.modbus import ModbusBus
from agent.bus.modbus_config import ModbusTcpLine
from agent.errors import BusUnavailable, DeviceTimeout
silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen()  # connects, never answers
closed = socket.socket(); closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
async def read(port):
    bus = ModbusBus("m", ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port, timeout=0.2))
    try:
        await bus.read_registers(1, fc=3, address=0, count=2)
    except (DeviceTimeout, BusUnavailable) as e:
        print(type(e).__name__)
    finally:
        await bus.close()
asyncio.run(read(silent.getsockname()[1]))
asyncio.run(read(closed.getsockname()[1]))
print(sorted(m for m in sys.modules if m.startswith("pymodbus")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["DeviceTimeout", "BusUnavailable", "[]"]
