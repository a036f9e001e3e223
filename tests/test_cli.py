"""The command line as a user meets it: real subprocesses, real sockets, a real agent and broker.

No traceback ever reaches the user: every failure is one line naming the problem, exit 2 for a
usage or config error, 1 for a runtime failure. ``status`` tells whether the agent really runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.agent_proc import AgentProcess, wait_until, write_replay_csv


def edge_agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(r: subprocess.CompletedProcess, code: int, *names: str) -> None:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == code, out
    for name in names:
        assert name in out, out




def test_scan_tcp_without_port_is_a_usage_error() -> None:
    r = edge_agent("scan", "--tcp", "127.0.0.1")
    assert_one_line_error(r, 2, "--tcp", "'127.0.0.1' is not HOST:PORT")


@pytest.mark.parametrize("sim", ["sdm630", "modbus-charger", "huawei-sun2000", "sungrow-sh"])
def test_modbus_simulator_on_a_silent_port_names_the_address(sim: str, silent_port: int) -> None:
    r = edge_agent("simulate", sim, "--tcp", f"127.0.0.1:{silent_port}")
    assert_one_line_error(r, 1, f"cannot listen on 127.0.0.1:{silent_port}")


def test_serial_simulator_on_a_missing_port_names_it() -> None:
    r = edge_agent("simulate", "pms5003", "--port", "/dev/ttyUSB-does-not-exist")
    assert_one_line_error(r, 1, "cannot open /dev/ttyUSB-does-not-exist", "No such file")


def test_serial_simulator_link_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    link = tmp_path / "no-such-dir" / "ttyUSB0"
    r = edge_agent("simulate", "pms5003", "--link", str(link))
    assert_one_line_error(r, 2, "--link", f"directory '{link.parent}' does not exist")


def test_ocpp_charge_point_without_a_central_system_names_the_url() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = edge_agent("simulate", "ocpp-charge-point", "--url", f"ws://127.0.0.1:{port}")
    assert_one_line_error(r, 1, f"cannot connect to the central system at ws://127.0.0.1:{port}/CP1")


def test_an_unexpected_error_is_one_line_with_a_hint(monkeypatch, capsys) -> None:
    import click

    from agent.cli import main as cli_main

    @click.command("explode")
    def explode() -> None:
        raise RuntimeError("something nobody anticipated\nsecond line")

    cli_main.cli.add_command(explode)
    monkeypatch.delenv(cli_main.DEBUG_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["edge-agent", "explode"])
    try:
        with pytest.raises(SystemExit) as exc:
            cli_main.main()
        err = capsys.readouterr().err
        assert exc.value.code == 1
        assert err.splitlines() == ["error: RuntimeError: something nobody anticipated",
                                    "(rerun as 'edge-agent --debug ...' for the full traceback)"]
        monkeypatch.setattr(sys, "argv", ["edge-agent", "--debug", "explode"])
        with pytest.raises(RuntimeError):  # --debug lets the traceback through
            cli_main.main()
    finally:
        cli_main.cli.commands.pop("explode")
        os.environ.pop(cli_main.DEBUG_ENV, None)


# -- status -----------------------------------------------------------------------------------------

def _config(tmp_path: Path, body: str = "", *, health_interval: float | None = None) -> Path:
    """A minimal config. The default health interval (30 s) lets a report written by a test stay live
    however long a loaded machine takes to start the ``status`` subprocess."""
    health = f"[health]\ninterval = {health_interval}\n" if health_interval else ""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw-cli"\nstate_dir = "{tmp_path / "state"}"\n'
                   '[mqtt]\nhost = "127.0.0.1"\nport = 1\n' + health + body)
    return cfg


def test_status_never_creates_state_files(tmp_path: Path) -> None:
    r = edge_agent("status", "--config", str(_config(tmp_path)))
    assert_one_line_error(r, 1, "no status file", str(tmp_path / "state"))
    assert not (tmp_path / "state").exists()


def test_status_on_a_truncated_status_file_names_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "status.json").write_text('{"v": 1, "gateway": "gw-cli", "ts": 17672')
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 1, "status.json is not a complete JSON document")


def test_status_on_a_partial_report_shows_what_it_has(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    (tmp_path / "state").mkdir()
    now = time.time_ns() // 1_000_000
    (tmp_path / "state" / "status.json").write_text(json.dumps({"gateway": "gw-cli", "ts": now, "pid": os.getpid()}))
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 0, "gateway gw-cli")


def test_status_shows_every_part_of_the_health_report_the_agent_writes(tmp_path: Path) -> None:
    from agent.docgen_health import HEALTH_EXAMPLE
    from agent.health import PipelineHealth, write_status

    cfg = _config(tmp_path)
    (tmp_path / "state").mkdir()
    report = HEALTH_EXAMPLE.model_copy(deep=True, update={  # deep: the drops below are changed
        "ts": time.time_ns() // 1_000_000,
        "pipeline": PipelineHealth(readings_in=5, messages_committed=2, held=40, held_bytes=2_500_000,
                                   clock_waiting=12, clock_repaired=3, clock_steps=1)})
    report.buffer.drops.raw = 7
    write_status(tmp_path / "state", report)  # as the agent writes it
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 0)
    out = r.stdout
    assert re.search(r"^buffer\s+12 messages, 1.05 MB, oldest unsent 0 s, last seq 18263, drops raw 7$", out, re.M), out
    assert re.search(r"^uplink\s+connected, 18251 acked, 12 in flight, 2.1 msg/s, 204 readings/s, reconnects 2$",
                     out, re.M), out
    assert "refused by the broker: edge/gw-042/telemetry/meter9 (Not authorized, 3 times" in out, out
    assert re.search(r"^clock\s+synchronised \(decided by chrony: chrony reports", out, re.M), out
    assert re.search(r"^config\s+version 42, sha256 9f86d081884c7d65$", out, re.M), out
    assert re.search(r"^pipeline\s+40 messages \(2.50 MB\) held in memory", out, re.M), out
    assert "12 messages wait for the clock sync, 3 repaired, 0 published as estimated, 1 steps" in out, out
    assert re.search(r"^\s+meter1\s+up\s+ok 17280\s+failed 3\s+latency 41.5 ms", out, re.M), out


def test_status_on_a_report_with_a_damaged_part_shows_the_rest(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    (tmp_path / "state").mkdir()
    now = time.time_ns() // 1_000_000
    (tmp_path / "state" / "status.json").write_text(json.dumps(
        {"gateway": "gw-cli", "ts": now, "pid": os.getpid(), "buffer": "junk", "uplink": {"acked": "many"},
         "devices": {"m": {"up": True, "polls_ok": 4}}, "added_by_a_newer_agent": {"x": 1}}))
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 0, "gateway gw-cli")
    assert not re.search(r"^(buffer|uplink)", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+m\s+up\s+ok 4\b", r.stdout, re.M), r.stdout


def _uplink_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("uplink"))


def test_status_shows_live_rates_and_says_when_the_agent_stopped(tmp_path: Path, mosquitto) -> None:
    csv = tmp_path / "load.csv"
    write_replay_csv(csv, 2000)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw-cli"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n[health]\ninterval = 1\n'
                   f'[[devices]]\nname = "load"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\n'
                   'max_rows_per_read = 20\npoll_interval = 0.1\ntimestamps = "original"\n')
    status_file = tmp_path / "state" / "status.json"

    def report() -> dict:
        try:
            return json.loads(status_file.read_text())
        except (OSError, ValueError):
            return {}

    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        assert wait_until(lambda: (report().get("uplink") or {}).get("readings_per_s", 0) > 0, 60), agent.log_tail()
        r = edge_agent("status", "--config", str(cfg))
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"([\d.]+) msg/s, (\d+) readings/s", _uplink_line(r.stdout))
        assert m and float(m[1]) > 0 and int(m[2]) > 0, r.stdout  # the documented health keys are read
        assert "connected" in _uplink_line(r.stdout) and "load" in r.stdout
        # the clock line says what the time sync detection found on this machine, and which source decided
        assert re.search(r"^clock\s+(synchronised|NOT synchronised|sync unknown) \(decided by \w", r.stdout, re.M), r.stdout
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 3, "not running")
    assert not re.search(r"^uplink\s+connected", r.stdout, re.M), r.stdout  # nothing claims to be live
    assert not re.search(r"^\s+load\s+up\b", r.stdout, re.M) and re.search(r"^\s+load\s+was up\b", r.stdout, re.M), r.stdout


def test_status_says_when_the_report_is_stale(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    (tmp_path / "state").mkdir()
    old = time.time_ns() // 1_000_000 - 3_600_000  # an hour old, health interval 30 s
    (tmp_path / "state" / "status.json").write_text(json.dumps(
        {"gateway": "gw-cli", "ts": old, "pid": os.getpid(), "uplink": {"connected": True}}))
    r = edge_agent("status", "--config", str(cfg))
    assert_one_line_error(r, 3, "stale")


def test_run_with_a_missing_replay_file_names_it_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    cfg = _config(tmp_path, f'[[devices]]\nname = "r"\ntype = "replay"\nfile = "{missing}"\n')
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        assert wait_until(lambda: str(missing) in agent.log_tail(20000) or agent.proc.poll() is not None, 60)
        wait_until(lambda: str(missing) in agent.log_tail(20000), 5)
    finally:
        agent.terminate()
    log = agent.log_tail(20000)
    assert str(missing) in log and "Traceback" not in log, log


def test_read_shows_quality_flags_by_name(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("timestamp,value\n2026-01-01 00:10:00,1\n2026-01-01 00:05:00,2\n")  # a step back in time
    cfg = _config(tmp_path, f'[[devices]]\nname = "r"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\n')
    r = edge_agent("read", "--config", str(cfg), "r")
    assert_one_line_error(r, 0)
    lines = [line.split() for line in r.stdout.splitlines() if line.startswith("  value")]
    assert [line[-1] for line in lines] == ["estimated", "estimated,device_flagged"], r.stdout


PYTHON_INTERNALS = re.compile(r"PydanticUndefined|<[A-Za-z]+\.[A-Z0-9_]+: |\b[A-Z][A-Za-z]+\(\w+=")  # <Enum.X: 'x'>, Model(a=


def test_drivers_and_the_config_reference_show_toml_not_python_internals() -> None:
    r = edge_agent("drivers")
    assert_one_line_error(r, 0)
    assert not PYTHON_INTERNALS.search(r.stdout), PYTHON_INTERNALS.search(r.stdout)
    replay = r.stdout.split("\nreplay ")[1].split("\n\n")[0]
    assert re.search(r"^\s+publish\s+default \"raw\"; one of \"raw\", \"agg\", \"both\"", replay, re.M), replay
    assert re.search(r"^\s+file\s+required; CSV file", replay, re.M), replay
    assert re.search(r"^\s+loop\s+default true;", replay, re.M), replay
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config-reference.md").read_text()
    assert not PYTHON_INTERNALS.search(doc), PYTHON_INTERNALS.search(doc)
    assert "| `publish` | \"raw\" \\| \"agg\" \\| \"both\" | `\"raw\"` |" in doc


def test_run_logs_startup_at_once_and_a_failing_modbus_device_once(tmp_path: Path) -> None:
    """pymodbus's own ERROR per failed request stays out of the log; the agent says down once."""
    silent = socket.socket()  # accepts Modbus TCP connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    cfg = _config(tmp_path, f'[lines.bus]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 0.1\n'
                            '[[devices]]\nname = "m"\ntype = "modbus_meter"\nline = "bus"\nprofile = "sdm630"\n'
                            'poll_interval = 0.2\nbackoff_max = 0.2\n', health_interval=1)
    status_file = tmp_path / "state" / "status.json"

    def failed_polls() -> int:
        try:
            return json.loads(status_file.read_text())["devices"]["m"]["polls_failed"]
        except (OSError, ValueError, KeyError):
            return 0

    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        assert wait_until(lambda: failed_polls() >= 5, 60), agent.log_tail()
    finally:
        agent.terminate()
        silent.close()
    lines = (tmp_path / "agent.log").read_text().splitlines()
    assert "config" in lines[0] and "loaded" in lines[0] and "1 device(s)" in lines[0], lines[:3]
    assert not [line for line in lines if "pymodbus" in line], lines
    assert len([line for line in lines if "device m: down" in line]) == 1, lines


def test_technician_commands_do_not_need_the_services_credential(tmp_path: Path) -> None:
    """`status` and `buffer` never talk to the broker: a `${cred:...}` only systemd provides does not stop them."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw-cli"\nstate_dir = "{tmp_path / "state"}"\n'
                   '[mqtt]\nhost = "127.0.0.1"\nport = 1\npassword = "${cred:mqtt-password}"\n')
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    for args in (("status",), ("buffer", "stats")):
        r = subprocess.run([sys.executable, "-m", "agent.cli.main", *args, "--config", str(cfg)], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
        out = r.stdout + r.stderr
        assert "CREDENTIALS_DIRECTORY" not in out and "config invalid" not in out, out
        assert_one_line_error(r, 1, str(tmp_path / "state"))  # it got as far as looking for the agent's state
