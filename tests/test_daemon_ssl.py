"""``edge-agent run`` loads OpenSSL (the ``ssl`` and ``_hashlib`` modules: libssl, libcrypto, ≈ 4.5 MiB
RSS) only when its config uses TLS (agent.cli.without_ssl): a plain-text agent runs and delivers
without it, a TLS agent loads it and delivers over TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_helpers import free_port

from agent.cli.without_ssl import needs_tls, prepare

RUN_AND_LIST = ("import atexit, runpy, sys\n"
                "listed = sys.argv.pop()\n"
                "atexit.register(lambda: open(listed, 'w').write(' '.join(sorted(sys.modules))))\n"
                "sys.argv[0] = 'edge-agent'\n"
                "runpy.run_module('agent.cli.main', run_name='__main__')\n")

CONFIG = """
[gateway]
id = "gw"
state_dir = "{state}"

[mqtt]
host = "{host}"
port = {port}
{tls}
[[devices]]
name = "load"
type = "replay"
file = "{csv}"
"""

# a Modbus TCP line: its client is the agent's own; pymodbus's clients (which import ssl) are for RTU
MODBUS_TCP = """
[lines.meters]
type = "modbus_tcp"
host = "127.0.0.1"
port = {port}

[[devices]]
name = "m1"
type = "modbus_meter"
profile = "sdm120"
unit = 1
line = "meters"
"""


def run_and_list(tmp_path: Path, broker, sub, tls: str, extra: str = "") -> set[str]:
    """The real service publishing until the subscriber got a message, stopped by SIGTERM: its modules."""
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,value\n" + "".join(f"2026-01-01T00:0{i}:00,{i}.5\n" for i in range(5)))
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", csv=csv, host=broker.host, port=broker.port, tls=tls)
                      + extra)
    listed, log = tmp_path / "modules.txt", tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_SSL"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUN_AND_LIST, "run", "--config", str(config), str(listed)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        sub.wait_for(1, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    return set(listed.read_text().split())


def test_a_plain_text_agent_runs_and_delivers_without_ssl(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                          warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    # nothing listens on the meter's port: it fails, its line is built and opened all the same
    mods = run_and_list(tmp_path, mosquitto, sub, tls="", extra=MODBUS_TCP.format(port=free_port()))
    assert "agent.uplink.mqtt" in mods and "agent.bus.modbus" in mods  # it ran, with its Modbus line
    assert not {"ssl", "_ssl", "_hashlib"} & mods
    assert not any(m.startswith(("pymodbus.client", "pymodbus.transport")) for m in mods)


def test_a_tls_agent_loads_ssl_and_delivers_over_tls(tmp_path: Path, mosquitto_factory, mqtt_subscriber,
                                                     tls_material, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    broker = mosquitto_factory(tls=tls_material)
    sub = mqtt_subscriber(broker, "edge/gw/telemetry/#", tls=tls_material)
    mods = run_and_list(tmp_path, broker, sub, tls=f'[mqtt.tls]\nca_file = "{tls_material.ca_file}"\n')
    assert "ssl" in mods and "_ssl" in mods


@pytest.mark.parametrize(("config", "tls"), [
    ({}, False),
    ({"mqtt": {"host": "b"}}, False),
    ({"mqtt": {"tls": {}}}, True),
    ({"mqtt": {"tls": {"ca_file": "/ca.pem"}}}, True),
    ({"mqtt": {"tls": {"enabled": False}}}, False),
    ({"mqtt": {"tls": {"enabled": "${TLS}"}}}, True),  # decided by the environment: TLS, to be safe
    ({"devices": [{"type": "replay"}], "lines": {"m": {"type": "modbus_tcp"}}}, False),
    ({"devices": [{"type": "example_thermometer"}]}, True),  # a third-party driver may use TLS of its own
    ({"devices": [{"name": "no type"}]}, True),
    ({"mqtt": "not a table"}, True),
])
def test_what_counts_as_tls(config: dict, tls: bool) -> None:
    assert needs_tls(config) is tls


def test_only_run_is_started_without_ssl_and_never_on_an_unreadable_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\n")
    assert not prepare(["run", "--config", str(tmp_path / "missing.toml")])
    assert not prepare(["run", "--config", str(bad)])
    assert not prepare(["check", "--config", str(bad)])


PROBE = """
import sys
from agent.cli.without_ssl import prepare, confirm
print("hidden", prepare(["run", "--config", sys.argv[1]]), "ssl" in sys.modules)
import asyncio.sslproto, hashlib, hmac, paho.mqtt.client as paho
print("asyncio-ssl", asyncio.sslproto.ssl is not None, "_hashlib" in sys.modules)
assert hmac.new(b"k", b"m", "sha256").hexdigest().startswith("b60090e3")  # a signed command's check, built-in
before = paho.ssl.SSLWantReadError
import ssl  # what `doctor` over MQTT does to probe a TLS port: the real module, as usual
ssl.create_default_context()
print("later", paho.ssl.SSLWantReadError is ssl.SSLWantReadError, before is not ssl.SSLWantReadError)
sys.stdout.flush()
confirm(True)  # the validated config asks for TLS: the process starts again, with ssl
"""


def test_ssl_is_hidden_only_while_asyncio_and_paho_load_and_tls_found_late_starts_again(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "b"\n')
    env = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_SSL"}
    r = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "hidden True False", "asyncio-ssl False False", "later True True",  # the first process
        "hidden False False", "asyncio-ssl True True", "later True False",  # started again (EDGE_AGENT_SSL=1)
    ]


def test_a_config_with_the_web_page_keeps_openssls_hashes_for_its_login(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "b"\n\n[web]\n')
    code = ("import sys\nfrom agent.cli.without_ssl import prepare\n"
            "print(prepare(['run', '-c', sys.argv[1]]), 'ssl' in sys.modules)\n"
            "import hashlib\nprint(hasattr(hashlib, 'scrypt'))\n")
    r = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "True"]


def test_the_start_announced_to_systemd_comes_before_and_loads_neither(tmp_path: Path) -> None:
    # under systemd (Type=notify) `run` first extends its start timeout: that must not import asyncio, or
    # asyncio would come with OpenSSL whatever the config
    code = ("import sys\nfrom agent.cli.main import announce_service_start\n"
            "announce_service_start(['run', '-c', 'agent.toml'])\n"
            "print(sorted(m for m in ('asyncio', 'hashlib', 'paho', 'ssl', '_hashlib') if m in sys.modules))\n")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
