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
from process_probe import probe

from agent.cli.without_ssl import config_path, needs_tls, uses_pymodbus_clients

ONE_START = 2  # processes begun by one start: the validating one and the run-time one it executes
NO_SSL_ENV = {k: v for k, v in os.environ.items() if k not in ("EDGE_AGENT_SSL", "EDGE_AGENT_SSL_RESTART")}
# `run` staying in one process: its validating process imports asyncio, paho and pymodbus's clients itself
# (handing over, it imports only what validation needs and leaves the rest to the run-time process)
ONE_PROCESS_ENV = {**NO_SSL_ENV, "EDGE_AGENT_EXEC": "0"}

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


def run_and_list(tmp_path: Path, broker, sub, tls: str, extra: str = "",
                 pythonpath: Path | None = None) -> tuple[set[str], int]:
    """The real service publishing until the subscriber got a message, stopped by SIGTERM: the modules of
    the process that ran the agent (the run-time process, agent.runtime) and how many times a process of
    the start began (the validating process and the run-time one it executes; a start again is one more)."""
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,value\n" + "".join(f"2026-01-01T00:0{i}:00,{i}.5\n" for i in range(5)))
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", csv=csv, host=broker.host, port=broker.port, tls=tls)
                      + extra)
    log = tmp_path / "agent.log"
    env = dict(NO_SSL_ENV)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    seen = probe(tmp_path / "probe")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=seen.env(env))
    try:
        sub.wait_for(1, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    starts, exits = seen.records("start"), seen.records("exit")
    assert {r["pid"] for r in starts + exits} == {proc.pid}  # one process, executed in place
    assert len(exits) == 1 and exits[0]["optimize"] == 2, exits  # the run-time process ended the run
    return set(exits[0]["modules"]), len(starts)


# paho tries `import dns.resolver` (dnspython: Debian's python3-dnspython, which samba brings, is in the
# system site-packages the .deb's venv uses); dnspython reads ssl's attributes when it is imported, with a
# stand-in class of its own when `import ssl` fails (dns/query.py)
DNSPYTHON_LIKE = """
try:
    import ssl
except ImportError:
    class ssl:
        class SSLContext:
            pass


def make_context() -> ssl.SSLContext:
    return ssl.SSLContext()
"""

# a module that reads ssl even when it cannot be imported: no import without ssl works, the agent starts
# again with it
NEEDS_SSL = """
try:
    import ssl
except ImportError:
    ssl = None
CLIENT = ssl.PROTOCOL_TLS_CLIENT
"""


def fake_dns(tmp_path: Path, resolver: str) -> Path:
    package = tmp_path / "site" / "dns"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "resolver.py").write_text(resolver)
    return package.parent


def test_a_plain_text_agent_runs_and_delivers_without_ssl(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                          warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    # nothing listens on the meter's port: it fails, its line is built and opened all the same
    mods, starts = run_and_list(tmp_path, mosquitto, sub, tls="", extra=MODBUS_TCP.format(port=free_port()),
                                pythonpath=fake_dns(tmp_path, DNSPYTHON_LIKE))
    assert starts == ONE_START and "dns.resolver" in mods  # paho found dnspython and took it without ssl
    assert "agent.uplink.mqtt" in mods and "agent.bus.modbus" in mods  # it ran, with its Modbus line
    assert not {"ssl", "_ssl", "_hashlib"} & mods
    assert not any(m.startswith(("pymodbus.client", "pymodbus.transport")) for m in mods)


# a Modbus RTU line (RTU framing over a TCP socket here): its client is pymodbus's
MODBUS_RTU = """
[lines.rs485]
type = "modbus_rtu"
port = "socket://127.0.0.1:{port}"
timeout = 5.0

[[devices]]
name = "m1"
type = "modbus_meter"
profile = "sdm120"
unit = 1
line = "rs485"
poll_interval = 0.5
"""


def test_an_agent_with_a_modbus_rtu_line_reads_it_without_ssl(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                              warmed_kernel_cache) -> None:
    # pymodbus's clients imported ssl (and built an SSLContext for its TLS clients' defaults): OpenSSL
    # was loaded for every RS-485 gateway (≈ 5 MiB RSS)
    from tests.sim_thread import simulator

    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/m1")  # the meter's readings, read over RTU
    port = free_port()
    with simulator("sdm120", tcp=None, rtu_socket=f"127.0.0.1:{port}", update_interval=None):
        mods, starts = run_and_list(tmp_path, mosquitto, sub, tls="", extra=MODBUS_RTU.format(port=port))
    assert starts == ONE_START and {"pymodbus.client", "pymodbus.transport.transport"} <= mods
    assert not {"ssl", "_ssl", "_hashlib"} & mods


def test_a_tls_agent_loads_ssl_and_delivers_over_tls(tmp_path: Path, mosquitto_factory, mqtt_subscriber,
                                                     tls_material, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    broker = mosquitto_factory(tls=tls_material)
    sub = mqtt_subscriber(broker, "edge/gw/telemetry/#", tls=tls_material)
    mods, starts = run_and_list(tmp_path, broker, sub, tls=f'[mqtt.tls]\nca_file = "{tls_material.ca_file}"\n')
    assert "ssl" in mods and "_ssl" in mods
    assert starts == ONE_START  # the config's TLS was seen at once: not found late, by a start again


def test_a_module_that_cannot_import_without_ssl_gets_it_and_the_agent_delivers(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    mods, starts = run_and_list(tmp_path, mosquitto, sub, tls="", pythonpath=fake_dns(tmp_path, NEEDS_SSL))
    # the run-time process found it (paho imports dns.resolver) and started `run` again at once, with ssl
    assert starts == 2 * ONE_START and {"ssl", "dns.resolver"} <= mods


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


def test_what_counts_as_built_in_is_this_projects_distribution_not_a_module_name(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    # a third-party package may name its module `drivers.…` too: it is not this project's
    info = tmp_path / "site" / "sneaky_driver-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sneaky-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[edge_agent.drivers]\nsneaky = drivers.sneaky:DRIVER\n")
    monkeypatch.syspath_prepend(str(info.parent))
    assert needs_tls({"devices": [{"type": "sneaky"}]})
    assert not needs_tls({"devices": [{"type": "replay"}]})


@pytest.mark.parametrize(("lines", "pymodbus"), [
    ({"m": {"type": "modbus_rtu"}}, True),
    ({"m": {"type": "modbus_rtu_over_tcp"}}, True),
    ([{"type": "modbus_tcp"}, {"type": "serial"}], False),
])
def test_lines_whose_client_is_pymodbus_have_it_imported_without_ssl(lines, pymodbus: bool) -> None:
    # pymodbus.client imports ssl whatever the line: it is imported with ssl standing in for those lines
    assert uses_pymodbus_clients({"lines": lines}) is pymodbus


@pytest.mark.parametrize("args", [["-c", "a", "-c", "b"], ["--config", "a", "--config=b"], ["-ca", "--config", "b"],
                                  ["--config=a", "-cb"], ["-c", "a"], ["--once", "-c", "a", "--", "-c", "b"], []])
def test_the_config_read_first_is_the_one_click_takes(args: list[str], monkeypatch) -> None:
    from agent.cli.cmd_run import command

    monkeypatch.setenv("EDGE_AGENT_CONFIG", "from-env.toml")
    ctx = command.make_context("run", list(args), resilient_parsing=True)
    assert config_path(["run", *args]) == ctx.params["config_path"]


PREPARED = """
import sys
from agent.cli.without_ssl import prepare
d = sys.argv[1]
for argv in (["run", "--config", d + "/missing.toml"], ["run", "--config", d + "/bad.toml"],
             ["check", "--config", d + "/plain.toml"], ["run", "--once", "--config", d + "/plain.toml"],
             ["run", "--config", d + "/bom.toml"]):
    print(prepare(argv), "ssl" in sys.modules, "asyncio" in sys.modules)
"""


def test_only_run_is_started_without_ssl_and_never_on_an_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[mqtt\n")
    (tmp_path / "plain.toml").write_text('[mqtt]\nhost = "b"\n')
    (tmp_path / "bom.toml").write_text('\ufeff[mqtt]\nhost = "b"\n', encoding="utf-8")  # read as the loader does
    r = subprocess.run([sys.executable, "-c", PREPARED, str(tmp_path)], capture_output=True, text=True,
                       timeout=120, env=NO_SSL_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["False False False"] * 4 + ["True False True"]


def test_a_python_without_a_built_in_sha256_keeps_openssls_hashes(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "b"\n')
    code = ("import sys\nsys.modules['_sha2'] = sys.modules['_sha256'] = None  # a Python built without them\n"
            "from agent.cli.without_ssl import prepare\n"
            "print(prepare(['run', '-c', sys.argv[1]]), 'ssl' in sys.modules)\n"
            "import hashlib, hmac\nprint(hmac.new(b'k', b'm', hashlib.sha256).hexdigest()[:8], '_hashlib' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120,
                       env=NO_SSL_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "b60090e3", "True"]


TRIAL = """
import os, sys
from agent.cli import without_ssl
print(without_ssl.prepare(["run", "--config", sys.argv[1]]))
from agent.remote import ConfigFiles
from agent.remote.restart import start_trial
files = ConfigFiles(sys.argv[1])
trial = start_trial(files, count=not without_ssl.restarted_by_confirm)  # as `run` does
print(trial and trial["version"], os.environ.get("EDGE_AGENT_SSL_RESTART"), os.environ.get("EDGE_AGENT_SSL"))
sys.stdout.flush()
without_ssl.confirm(True)  # the validated config asks for TLS the reading missed: the process starts again
"""


def test_a_start_again_for_tls_found_late_is_not_a_second_start_of_a_pushed_config(tmp_path: Path) -> None:
    from agent.remote import ConfigFiles

    files = ConfigFiles(tmp_path / "agent.toml")
    files.path.write_text('[mqtt]\nhost = "a"\n')
    files.candidate.write_text('[mqtt]\nhost = "b"\n')
    files.stage(b'[mqtt]\nhost = "b"\n', cid="cfg-1", version=3, timeout_s=30)
    r = subprocess.run([sys.executable, "-c", TRIAL, str(files.path)], capture_output=True, text=True,
                       timeout=120, env=NO_SSL_ENV)
    assert r.returncode == 0, r.stderr
    # the same trial in both processes (not rolled back), and no marker left for later restarts
    assert r.stdout.splitlines() == ["True", "3 None None", "False", "3 None None"]
    assert files.path.read_text() == '[mqtt]\nhost = "b"\n' and files.load().trial["starts"] == 1


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
    r = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True, text=True, timeout=120,
                       env=ONE_PROCESS_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "hidden True False", "asyncio-ssl False False", "later True True",  # the first process
        "hidden False False", "asyncio-ssl True True", "later True False",  # started again, with ssl
    ]


def test_a_config_with_the_web_page_keeps_openssls_hashes_for_its_login(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "b"\n\n[web]\n')
    code = ("import sys\nfrom agent.cli.without_ssl import prepare\n"
            "print(prepare(['run', '-c', sys.argv[1]]), 'ssl' in sys.modules)\n"
            "import hashlib\nprint(hasattr(hashlib, 'scrypt'))\n")
    r = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120,
                       env=NO_SSL_ENV)
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


def test_pymodbus_tls_clients_refuse_to_be_built_in_a_process_without_ssl(tmp_path: Path) -> None:
    # the stand-in for pymodbus.client.tls (the agent builds no Modbus-over-TLS client) says why
    config = tmp_path / "agent.toml"
    config.write_text('[gateway]\nid = "gw"\n[mqtt]\nhost = "127.0.0.1"\n'
                      '[lines.rs485]\ntype = "modbus_rtu"\nport = "/dev/ttyUSB0"\n')
    code = ("import sys\n"
            "from agent.cli.without_ssl import prepare\n"
            f"print(prepare(['run', '-c', {str(config)!r}]))\n"
            "from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTlsClient\n"
            "print('_ssl' in sys.modules, '_hashlib' in sys.modules)\n"
            "try:\n"
            "    AsyncModbusTlsClient('127.0.0.1')\n"
            "except RuntimeError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=ONE_PROCESS_ENV)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["True", "False False"]
    assert "started without OpenSSL" in lines[2] and "EDGE_AGENT_SSL=1" in lines[2]


WITHOUT_PYSOCKS = """
import sys
sys.modules["socks"] = None  # PySocks not installed (it is not a dependency): paho looks up no proxy
from agent.runtime.nossl import import_without
import_without(("ssl", "_hashlib"), pymodbus=False)
import paho.mqtt.client as mqtt
before = sorted(m for m in ("urllib.request", "http.client", "email.parser", "ssl") if m in sys.modules)
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.connect(sys.argv[1], int(sys.argv[2]))
c.loop_start()
info = c.publish("t/x", b"1", qos=1)
info.wait_for_publish(30)
c.loop_stop()
c.disconnect()
print(before, info.is_published())
print(callable(mqtt.urllib.request.urlopen), type(mqtt.urllib.request).__name__)  # read later: the real one
"""


WITH_PYSOCKS = """
import sys
from agent.runtime.nossl import import_without
import_without(("ssl", "_hashlib"), pymodbus=False)
import paho.mqtt.client as mqtt
print(sorted(m for m in ("urllib.request", "http.client", "ssl") if m in sys.modules))
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.connect(sys.argv[1], int(sys.argv[2]))  # paho looks up proxies here
c.loop_start()
info = c.publish("t/x", b"1", qos=1)
info.wait_for_publish(30)
c.loop_stop()
c.disconnect()
print(info.is_published(), "urllib.request" in sys.modules, "_ssl" in sys.modules)
"""


@pytest.mark.parametrize(("variables", "imported"), [({}, []), ({"no_proxy": "*"}, ["http.client", "urllib.request"])])
def test_with_pysocks_paho_looks_up_proxies_without_urllib_request_unless_a_variable_names_one(
        mosquitto, variables, imported) -> None:
    """With PySocks installed paho looks up proxies at each connect. Without a ``*_proxy`` variable the
    answer is urllib's (none) without importing it; with one, urllib.request itself answers, imported
    with paho (without OpenSSL)."""
    env = {k: v for k, v in NO_SSL_ENV.items() if not k.lower().endswith("_proxy")} | variables
    r = subprocess.run([sys.executable, "-c", WITH_PYSOCKS, mosquitto.host, str(mosquitto.port)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(imported), f"True {bool(imported)} False"]


def test_without_pysocks_paho_runs_without_urllib_request(mosquitto) -> None:
    """paho imports urllib.request (http.client, email: ≈ 1.3 MiB) for a proxy lookup it makes only with
    PySocks installed: without PySocks the agent leaves it out, and paho delivers all the same."""
    r = subprocess.run([sys.executable, "-c", WITHOUT_PYSOCKS, mosquitto.host, str(mosquitto.port)],
                       capture_output=True, text=True, timeout=120, env=NO_SSL_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[] True", "True module"]
