"""The technician's first minutes with a real agent: `status` right after the start, and technician
commands in a shell that does not have the service's secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chaos.agent_proc import AgentProcess, agent_config, write_replay_csv

pytestmark = pytest.mark.timeout(180)


def edge_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env or dict(os.environ))


def test_status_in_the_first_seconds_never_shows_a_working_device_down(tmp_path: Path, mosquitto) -> None:
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 5_000)
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=10, poll=0.5)
    text = cfg.read_text().replace("[health]\ninterval = 1\n", "[health]\ninterval = 30\n")  # the default
    cfg.write_text(text.replace("poll_interval = 0.5\n", "poll_interval = 0.5\ntimeout = 60\n"))  # works, if slowly
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            r = edge_agent("status", "--config", str(cfg))
            if r.returncode == 0:
                seen.append(r.stdout)
                if " up " in next(line for line in r.stdout.splitlines() if "meter" in line):
                    break
            time.sleep(0.2)
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    assert seen, "status never showed the running agent"
    for out in seen:
        line = next(line for line in out.splitlines() if line.strip().startswith("meter"))
        assert "DOWN" not in line and "last good never" not in line, out
    assert " up " in next(line for line in seen[-1].splitlines() if "meter" in line), seen[-1]


def test_technician_commands_do_not_need_the_services_secret_variables(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n'
                   '[mqtt]\nhost = "broker.example"\nusername = "gw"\npassword = "${MQTT_PASSWORD}"\n')
    (tmp_path / "state").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MQTT_PASSWORD"}  # a technician's shell
    status = edge_agent("status", "--config", str(cfg), env=env)
    assert status.returncode != 2 and "MQTT_PASSWORD" not in status.stderr, status.stderr
    assert "no status" in (status.stdout + status.stderr).lower() or status.returncode in (1, 3), status.stderr
    buffer = edge_agent("buffer", "stats", "--config", str(cfg), env=env)
    assert buffer.returncode != 2 and "MQTT_PASSWORD" not in buffer.stderr, buffer.stderr
    assert "no outbox" in buffer.stderr, buffer.stderr
    # the service itself still needs it: `run` refuses, naming the variable
    run = edge_agent("run", "--config", str(cfg), env=env)
    assert run.returncode == 2 and "MQTT_PASSWORD" in (run.stdout + run.stderr), run.stderr


def charger_config(tmp_path: Path, broker_port: int, commands: str = "") -> Path:
    from mqtt_helpers import free_port

    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n{commands}'
                   f'[lines.lan]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {free_port()}\n'
                   '[[devices]]\nname = "cp1"\ntype = "modbus_charger"\nline = "lan"\nprofile = "abb_terra_ac"\n'
                   'writable = ["start", "stop", "current_limit"]\ntimeout = 0.5\n')
    return cfg


def test_unsigned_commands_with_writable_points_are_said_plainly_by_check_run_and_doctor(tmp_path: Path,
                                                                                         mosquitto) -> None:
    cfg = charger_config(tmp_path, mosquitto.port)
    said = ('commands are not signed ([commands] auth = "none") and 3 point(s) are writable (cp1: current_limit, '
            "start, stop): anyone who can publish to edge/gw/cmd/# on the broker can start and stop chargers")
    check = edge_agent("check", "--config", str(cfg))
    assert check.returncode == 0 and f"warning: {said}" in check.stderr, check.stderr
    assert '[commands] auth = "hmac"' in check.stderr and "docs/commands.md" in check.stderr
    doctor = edge_agent("doctor", "--config", str(cfg))
    assert f"! commands: {said}" in doctor.stdout and "→ turn on signed commands" in doctor.stdout, doctor.stdout
    log = tmp_path / "agent.log"
    agent = AgentProcess(cfg, log).start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "running:" not in log.read_text():
            time.sleep(0.2)
    finally:
        agent.terminate()
    assert said in log.read_text(), log.read_text()[-2000:]
    signed = charger_config(tmp_path, mosquitto.port, '[commands]\nauth = "hmac"\nsecret = "s3cret-s3cret"\n')
    quiet = edge_agent("check", "--config", str(signed))
    assert quiet.returncode == 0 and "not signed" not in quiet.stderr, quiet.stderr
