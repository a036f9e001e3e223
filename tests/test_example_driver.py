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


def test_a_point_the_example_driver_declares_is_commanded_over_mqtt(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    """The proof that the points vocabulary is open: a third-party driver declares a writable point
    (alarm_high) and the real agent, through a real mosquitto, writes it with the generic ``write``
    command and the driver's own alias, and refuses it out of bounds; nothing under agent/ names it."""
    with simulator("example-thermometer", temperature=21.0) as sim:
        cfg = write_config(tmp_path, sim.path, writable='["alarm_high"]', timeout="10")  # a loaded machine
        cfg.write_text(cfg.read_text().replace('port = 1\n', f'port = {mosquitto.port}\n')
                       .replace('host = "127.0.0.1"\nport', f'host = "{mosquitto.host}"\nport', 1))
        sub = mqtt_subscriber(mosquitto, "site/gw-ex/#")
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            sub.wait_for(1, 90, predicate=lambda m: m.topic == "site/gw-ex/health"
                         and m.json().get("uplink", {}).get("commands_subscribed") is True)

            def command(**body) -> dict:
                sub.client.publish("site/gw-ex/cmd/office", json.dumps(body), qos=1)
                got = sub.wait_for(1, 60, predicate=lambda m: m.topic == "site/gw-ex/cmd/office/result"
                                   and m.json().get("id") == body["id"])
                return got[0].json()

            out = command(id="w1", action="write", point="alarm_high", value=30.5)
            assert out["status"] == "accepted" and out["applied"] == 30.5, out
            assert sim.alarm_high == 30.5
            out = command(id="w2", action="set_alarm", value=28)  # the alias the driver declares
            assert out["status"] == "accepted" and out["applied"] == 28.0, out
            out = command(id="w3", action="write", point="alarm_high", value=200)
            assert out["code"] == "out_of_range" and out["reason"] == "alarm_high 200 degC is outside [-40, 125] degC", out
            out = command(id="w4", action="write", point="offset", value=1)
            assert out["code"] == "not_writable" and "'offset' is not declared writable" in out["reason"], out
            assert sim.alarm_high == 28.0  # nothing refused reached the device
        finally:
            agent.terminate()
            _, err = agent.communicate(timeout=30)
        assert "Traceback" not in err, err
