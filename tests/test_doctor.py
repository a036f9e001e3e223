"""``edge-agent doctor`` against a real mosquitto (plain, password, TLS and mutual TLS listeners),
real Modbus simulators and a missing serial port: the lines a technician reads and the exit code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.doctor_certs import DoctorCerts, make_doctor_certs
from tests.mqtt_helpers import Broker
from tests.sim_thread import free_port, simulator


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DoctorCerts:
    return make_doctor_certs(tmp_path_factory.mktemp("doctor-tls"))




def doctor(tmp: Path, broker: Broker, mqtt: str = "", devices: str = "") -> tuple[int, list[str]]:
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw-doc"\nstate_dir = "{tmp / "state"}"\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n{mqtt}\n{devices}')
    r = subprocess.run([sys.executable, "-m", "agent.cli.main", "doctor", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r.returncode, r.stdout.splitlines()


def line(lines: list[str], start: str) -> str:
    found = [s for s in lines if s.startswith(start)]
    assert len(found) == 1, "\n".join(lines)
    return found[0]


def tls_table(ca: Path, cert: Path | None = None, key: Path | None = None) -> str:
    text = f'[mqtt.tls]\nca_file = "{ca}"\n'
    return text + (f'cert_file = "{cert}"\nkey_file = "{key}"\n' if cert else "")


def test_a_healthy_setup_passes_every_check(tmp_path: Path, mosquitto_factory: Callable[..., Broker]) -> None:
    broker = mosquitto_factory(users={"gw": "s3cret"})
    csv = tmp_path / "flow.csv"
    csv.write_text("timestamp,value\n2026-01-01T00:00:00,1.5\n")
    port = free_port()
    devices = (f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
               '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nline = "meters"\nprofile = "sdm630"\n'
               f'[[devices]]\nname = "flow"\ntype = "replay"\nfile = "{csv}"\n')
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", update_interval=None):
        code, lines = doctor(tmp_path, broker, 'username = "gw"\npassword = "s3cret"\n', devices)
    assert code == 0, "\n".join(lines)
    assert not [s for s in lines if s.startswith("✗")], "\n".join(lines)
    assert line(lines, "✓ broker login") == "✓ broker login: accepted as 'gw' (MQTT 5)"
    assert line(lines, f"✓ line meters (modbus_tcp 127.0.0.1:{port})").endswith(": opens")
    assert line(lines, "✓ device meter (modbus_meter): answered one poll")
    assert line(lines, "✓ device flow (replay): answered one poll: 1 reading(s)")
    assert line(lines, "✓ file devices.flow.file") == f"✓ file devices.flow.file: {csv} readable"
    assert line(lines, "✓ disk: ").count("store cap 256 MiB") == 1
    assert [s for s in lines if s.startswith(("✓ clock: synchronised", "! clock: not synchronised"))], lines
    assert not (tmp_path / "state").exists()  # the checks made no state file


def test_a_wrong_password_is_named(tmp_path: Path, mosquitto_factory: Callable[..., Broker]) -> None:
    broker = mosquitto_factory(users={"gw": "s3cret"})
    code, lines = doctor(tmp_path, broker, 'username = "gw"\npassword = "wrong"\n')
    assert code == 1
    refused = line(lines, "✗ broker login: refused as 'gw': ")  # mosquitto says "Not authorized" (MQTT 5)
    assert "→ check [mqtt] username and password" in refused, refused


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong_ca", "✗ broker TLS: the broker's certificate is not signed by a CA in ca_file {other}"),
    ("expired", "✗ broker TLS: the broker's certificate expired on "),
    ("other_name", "✗ broker TLS: hostname mismatch: the broker's certificate is for DNS broker.example, not "
                   "127.0.0.1 → set [mqtt] host to a name the certificate lists"),
    ("mtls_without_cert", "✗ broker TLS: the broker requires a client certificate (mutual TLS) and none is "
                          "configured"),
    ("plain_to_tls", "✗ broker login: port {port} speaks TLS but the config connects in plain text"),
])
def test_tls_problems_get_a_reason(case: str, expected: str, tmp_path: Path, certs: DoctorCerts,
                                   mosquitto_factory: Callable[..., Broker]) -> None:
    material = {"expired": certs.expired, "other_name": certs.other_name}.get(case, certs.good)
    broker = mosquitto_factory(tls=material, require_certificate=case == "mtls_without_cert")
    mqtt = "" if case == "plain_to_tls" else tls_table(
        material.other_ca_file if case == "wrong_ca" else material.ca_file)
    code, lines = doctor(tmp_path, broker, mqtt)
    assert code == 1, "\n".join(lines)
    want = expected.format(other=material.other_ca_file, port=broker.port)
    assert [s for s in lines if s.startswith(want)], want + "\n" + "\n".join(lines)
    assert line(lines, f"✓ broker 127.0.0.1:{broker.port}: accepts TCP connections")
    if case == "mtls_without_cert":
        assert "→ set [mqtt.tls] cert_file and key_file" in line(lines, want), lines


def test_mutual_tls_with_the_client_certificate_passes(tmp_path: Path, certs: DoctorCerts,
                                                       mosquitto_factory: Callable[..., Broker]) -> None:
    m = certs.good
    broker = mosquitto_factory(tls=m, require_certificate=True)
    code, lines = doctor(tmp_path, broker, tls_table(m.ca_file, m.client_cert, m.client_key))
    assert code == 0, "\n".join(lines)
    assert line(lines, "✓ broker TLS: TLSv1.3 handshake, certificate for 127.0.0.1 verified, valid until ")
    assert line(lines, "✓ broker login: accepted anonymously (MQTT 5)")


def test_a_dead_device_and_a_missing_serial_port_are_named(tmp_path: Path, silent_port: int,
                                                          mosquitto: Broker) -> None:
    devices = (f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {silent_port}\ntimeout = 0.3\n'
               '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nline = "meters"\nprofile = "sdm120"\n'
               '[lines.uart]\ntype = "serial"\nport = "/dev/ttyUSB-missing"\n'
               '[[devices]]\nname = "dust"\ntype = "pms5003"\nline = "uart"\n'
               '[lines.i2c]\ntype = "i2c"\nbus = 97\n'
               '[[devices]]\nname = "air"\ntype = "bme680"\nline = "i2c"\n'
               '[store]\nmax_bytes = 1125899906842624\n')  # a 1 PiB cap: larger than any free space here
    code, lines = doctor(tmp_path, mosquitto, "", devices)
    assert code == 1, "\n".join(lines)
    assert line(lines, "✓ broker login: accepted anonymously")
    assert line(lines, f"✓ line meters (modbus_tcp 127.0.0.1:{silent_port}): opens")
    dead = line(lines, "✗ device meter (modbus_meter): DeviceTimeout: ")
    assert dead.endswith("→ check wiring, address/unit id and settings of line meters"), dead
    port = line(lines, "✗ line uart (serial /dev/ttyUSB-missing): ")
    assert "→ check the adapter is plugged in and the port path" in port, port
    assert line(lines, "✗ device dust (pms5003): ").endswith("→ fix line uart first (above)")
    i2c = line(lines, "✗ line i2c (i2c /dev/i2c-97): ")
    assert "→ enable I2C (raspi-config → Interface Options) and check the bus number" in i2c, i2c
    assert line(lines, "✗ device air (bme680): ")
    disk = line(lines, "! disk: ")
    assert "store cap 1073741824 MiB" not in disk and "the disk fills before the cap applies → lower [store] max_bytes " \
        "to at most" in disk, disk
    assert lines[-1].startswith("5 problem(s), "), lines[-1]


def test_clock_is_a_failure_only_when_readings_would_be_flagged() -> None:
    from agent.config import load_config_text
    from agent.doctor.system import check_clock
    from agent.timesync import TimeSync

    unsynced = TimeSync(False, "kernel", "kernel: unsynchronised (STA_UNSYNC)")
    strict = load_config_text('[gateway]\nid = "g"\nrequire_time_sync = true\n')
    relaxed = load_config_text('[gateway]\nid = "g"\n')
    assert check_clock(strict, unsynced).line().startswith(
        "✗ clock: not synchronised (kernel: unsynchronised (STA_UNSYNC)); with require_time_sync = true every "
        "reading is held (not published) until it is → enable a time service")
    assert check_clock(relaxed, unsynced).line().startswith("! clock: not synchronised")
    assert check_clock(relaxed, TimeSync(True, "chrony", "")).line() == "✓ clock: synchronised (chrony)"


def test_an_invalid_config_stops_before_any_check(tmp_path: Path, mosquitto: Broker) -> None:
    missing = tmp_path / "gone.csv"
    code, lines = doctor(tmp_path, mosquitto, "", f'[[devices]]\nname = "flow"\ntype = "replay"\nfile = "{missing}"\n')
    assert code == 2, lines
    assert lines[0].startswith("✗ config ") and "1 problem(s)" in lines[0], lines
    assert str(missing) in lines[1] and "not found" in lines[1], lines
    assert not [s for s in lines if "broker" in s], lines


def test_a_systemd_credential_is_not_guessed(tmp_path: Path, mosquitto: Broker, monkeypatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    code, lines = doctor(tmp_path, mosquitto, 'username = "gw"\npassword = "${cred:mqtt-password}"\n')
    assert code == 0, lines
    assert line(lines, "! broker login: not tested: the password is a systemd credential only the service sees")
