"""The example third-party driver package (tests/example_driver, installed with pip like any other):
the agent finds it through the entry point, `check` accepts its config, `run --once` reads it from its
simulator, and it passes the conformance kit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from agent.simkit.conformance import DriverConformance, SimDevice
from tests.sim_thread import simulator

try:
    from edge_agent_example_driver import SPEC
    from edge_agent_example_driver.sim import start
except ImportError as e:  # pragma: no cover - a clear message instead of a bare ImportError
    raise ImportError("the example driver is not installed: python3 -m pip install -e tests/example_driver") from e


def edge_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def write_config(tmp: Path, port: str, **extra: str) -> Path:
    keys = "".join(f"{k} = {v}\n" for k, v in extra.items())
    path = tmp / "agent.toml"
    path.write_text(f'[gateway]\nid = "gw-ex"\nstate_dir = "{tmp / "state"}"\n'
                    '[mqtt]\nhost = "127.0.0.1"\nport = 1\ntopic_prefix = "site"\n'
                    f'[lines.usb0]\ntype = "serial"\nport = "{port}"\n'
                    f'[[devices]]\nname = "office"\ntype = "example_thermometer"\nline = "usb0"\n{keys}')
    return path


def test_drivers_lists_the_installed_example_driver_and_its_simulator() -> None:
    r = edge_agent("drivers")
    assert r.returncode == 0, r.stderr
    assert "example_thermometer" in r.stdout and "Example thermometer" in r.stdout, r.stdout
    assert "offset" in r.stdout and "example-thermometer" in r.stdout, r.stdout  # its config key, its simulator


def test_check_accepts_its_config_and_names_a_bad_key(tmp_path: Path) -> None:
    r = edge_agent("check", "--config", str(write_config(tmp_path, "/dev/ttyUSB9", offset="-0.5")))
    assert r.returncode == 0, r.stdout + r.stderr
    r = edge_agent("check", "--config", str(write_config(tmp_path, "/dev/ttyUSB9", offset="99")))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "agent.toml:15: devices[0] (office).offset" in r.stderr, r.stderr


def test_run_once_reads_the_example_device_from_its_simulator(tmp_path: Path) -> None:
    with simulator("example-thermometer", temperature=23.25) as sim:
        r = edge_agent("run", "--once", "--config", str(write_config(tmp_path, sim.path, offset="-0.25")))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "1 device(s) polled once: 1 answered, 0 failed" in r.stderr, r.stderr
    topic, _, body = r.stdout.strip().partition(" ")
    assert topic == "site/gw-ex/telemetry/office", r.stdout
    assert {row["metric"]: row["value"] for row in json.loads(body)["readings"]} == {"temperature": 23.0, "humidity": 45.0}


class TestExampleThermometer(DriverConformance):
    spec = SPEC

    @asynccontextmanager
    async def live(self, tmp_path: Path) -> AsyncIterator[SimDevice]:
        sim = await start(temperature=19.5, humidity=51.0)
        try:
            yield SimDevice(device={"type": "example_thermometer", "line": "usb0"},
                            lines={"usb0": {"type": "serial", "port": sim.path}},
                            expected=lambda: {"temperature": sim.temperature, "humidity": sim.humidity})
        finally:
            await sim.stop()

    def dead(self, tmp_path: Path) -> SimDevice:
        return SimDevice(device={"type": "example_thermometer", "line": "usb0", "timeout": 0.3},
                         lines={"usb0": {"type": "serial", "port": str(tmp_path / "ttyABSENT")}})
