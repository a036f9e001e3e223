"""``edge-agent run --once`` and ``read --all`` against real simulators: the topics and payloads that
would be published, the exit code and the named failure when a device is dead, no state file made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from tests.sim_thread import free_port, simulator

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "payload.schema.json").read_text())


def edge_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)




def write_config(tmp: Path, meter_port: int, dead_port: int | None) -> Path:
    csv = tmp / "flow.csv"
    csv.write_text("timestamp,value\n2026-01-01T00:00:00,1.5\n2026-01-01T00:01:00,2.5\n")
    text = (f'[gateway]\nid = "gw-once"\nstate_dir = "{tmp / "state"}"\n'
            '[mqtt]\nhost = "127.0.0.1"\nport = 1\ntopic_prefix = "site"\n'  # no broker listens there
            f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {meter_port}\ntimeout = 10\n'
            '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nline = "meters"\nprofile = "sdm630"\ntimeout = 30\n'
            f'[[devices]]\nname = "flow"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\ntimestamps = "original"\n')
    if dead_port is not None:
        text += (f'[lines.dead]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {dead_port}\ntimeout = 0.5\n'
                 '[[devices]]\nname = "dead-meter"\ntype = "modbus_meter"\nline = "dead"\nprofile = "sdm120"\n'
                 'timeout = 1\n')
    path = tmp / "agent.toml"
    path.write_text(text)
    return path


def published(stdout: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in stdout.splitlines():
        topic, _, payload = line.partition(" ")
        out.setdefault(topic, []).append(json.loads(payload))
    return out


def test_run_once_prints_what_would_be_published_and_names_the_dead_device(tmp_path: Path, silent_port: int) -> None:
    port = free_port()
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", update_interval=None) as sim:
        r = edge_agent("run", "--once", "--config", str(write_config(tmp_path, port, silent_port)))
        expected = sim.values
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert "failed: dead-meter: DeviceTimeout" in r.stderr, r.stderr
    assert "3 device(s) polled once: 2 answered, 1 failed" in r.stderr, r.stderr
    msgs = published(r.stdout)
    assert set(msgs) == {"site/gw-once/telemetry/meter", "site/gw-once/telemetry/flow"}, r.stdout
    for bodies in msgs.values():
        for body in bodies:
            assert jsonschema.Draft202012Validator(SCHEMA).is_valid(body), body
            assert body["gateway"] == "gw-once" and body["v"] == 1
    meter = {row["metric"]: row["value"] for b in msgs["site/gw-once/telemetry/meter"] for row in b["readings"]}
    assert meter == expected  # decoded as the service decodes: exact equality with the simulator
    flow = msgs["site/gw-once/telemetry/flow"][0]["readings"]
    assert [(row["value"], row["ts"]) for row in flow] == [(1.5, 1767225600000), (2.5, 1767225660000)]
    assert sorted(b["seq"] for bodies in msgs.values() for b in bodies) == list(range(1, 1 + sum(map(len, msgs.values()))))
    assert not (tmp_path / "state").exists()  # no outbox, lock, status or cache was made


def test_run_once_reads_the_state_dir_without_changing_it(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    (state / "numba-cache").mkdir(parents=True)
    (state / "outbox.db").write_bytes(b"not touched")
    before = {p: p.stat().st_mtime_ns for p in state.rglob("*")}
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", update_interval=None):
        r = edge_agent("run", "--once", "--config", str(write_config(tmp_path, port, None)))
    assert r.returncode == 0, r.stderr
    assert "2 device(s) polled once: 2 answered, 0 failed" in r.stderr, r.stderr
    assert {p: p.stat().st_mtime_ns for p in state.rglob("*")} == before
    assert (state / "outbox.db").read_bytes() == b"not touched"


def test_read_all_reads_every_device_and_names_the_failure(tmp_path: Path, silent_port: int) -> None:
    port = free_port()
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", update_interval=None):
        r = edge_agent("read", "--all", "--config", str(write_config(tmp_path, port, silent_port)))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stdout + r.stderr
    headers = [line.split()[0] for line in r.stdout.splitlines() if not line.startswith(" ")]
    assert headers == ["meter", "flow"], r.stdout
    assert "voltage_l1" in r.stdout, r.stdout
    assert "dead-meter: DeviceTimeout: unit 1 on 'dead': no reply" in r.stderr, r.stderr
    assert "3 device(s) read: 2 answered, failed: dead-meter" in r.stderr, r.stderr


def test_read_needs_a_device_or_all(tmp_path: Path) -> None:
    r = edge_agent("read", "--config", str(write_config(tmp_path, 1, None)))
    assert r.returncode == 2 and "name one DEVICE or give --all" in r.stderr, r.stderr
