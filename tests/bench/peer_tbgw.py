"""The ThingsBoard IoT Gateway (``thingsboard-gateway==3.8.5``) as a peer in bench_footprint.py: its
Modbus connector reads the same simulated meters, and its MQTT client publishes to the bench's local
mosquitto in place of a ThingsBoard server (topic ``v1/gateway/telemetry``, QoS 1).

It lives in a venv of its own (it pins its own pymodbus, 3.9.2): the bench finds its Python with
``--peer-python`` or ``TBGW_PYTHON`` (default ``/opt/tbgw/bin/python``, else none):

    python3 -m venv /opt/tbgw && /opt/tbgw/bin/pip install thingsboard-gateway==3.8.5 pymodbus==3.9.2 \
        pyserial pyserial-asyncio

The gateway subscribes to the topics it publishes attributes on and fails on its own messages when a
plain broker echoes them back (thingsboard-gateway issue #487): the broker lets its user write and read
only the replies to its own requests (an ACL). Before it sends telemetry it asks the server for its
session limits (an RPC, ``getSessionLimits``): :func:`answer_session_limits` answers as a ThingsBoard
without rate limits would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

DEFAULT_PYTHON = "/opt/tbgw/bin/python"
USER = "tbgw-bench"  # the gateway's access token = its MQTT user name
TOPIC = "v1/gateway/telemetry"
# anonymous clients (the bench): everything; the gateway: write, and read only the answers to its requests
ACL = f"topic readwrite #\n\nuser {USER}\ntopic write #\ntopic read v1/devices/me/rpc/response/#\n"
# what a ThingsBoard without rate limits answers the gateway's "getSessionLimits" request (it waits for it)
SESSION_LIMITS = {"maxPayloadSize": 65536, "maxInflightMessages": 100, "rateLimits": {}}


def find_python(option: str | None) -> tuple[str | None, str]:
    """(the peer's Python, None when absent; why not, or the version found)."""
    exe = option or os.environ.get("TBGW_PYTHON") or DEFAULT_PYTHON
    if not Path(exe).exists():
        return None, (f"no ThingsBoard IoT Gateway venv at {exe} (give --peer-python or TBGW_PYTHON; install: "
                      "python3 -m venv DIR && DIR/bin/pip install thingsboard-gateway==3.8.5 pymodbus==3.9.2 "
                      "pyserial pyserial-asyncio)")
    p = subprocess.run([exe, "-c", "import importlib.metadata as m; print(m.version('thingsboard-gateway'),"
                        " m.version('pymodbus'))"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None, f"{exe} has no thingsboard-gateway: {(p.stderr.strip().splitlines() or ['?'])[-1]}"
    tb, pymodbus = p.stdout.split()
    if pymodbus != "3.9.2":  # else the connector pip-installs it at start
        return None, f"{exe}: pymodbus {pymodbus}, the gateway's Modbus connector needs 3.9.2"
    return exe, f"thingsboard-gateway {tb}"


def _logs_json(exe: str, out: Path, logs: Path) -> None:
    src = subprocess.run([exe, "-c", "import thingsboard_gateway, os; print(os.path.dirname(thingsboard_gateway.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    text = (Path(src) / "config" / "logs.json").read_text()
    text = text.replace('"./logs/', f'"{logs}/')
    text = re.sub(r'"level": "(INFO|DEBUG)"', '"level": "WARNING"', text)
    out.write_text(text)


def write_config(exe: str, d: Path, *, host: str, port: int, modbus_port: int, meters: int,
                 registers: list[tuple[str, int]], poll_s: float, storage: str) -> Path:
    """The gateway's config directory for ``meters`` units (1..N) of ``registers`` (name, FC04 address
    of a float32 ABCD) polled every ``poll_s``; ``storage``: "memory" or "sqlite"."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    _logs_json(exe, d / "logs.json", d / "logs")
    store = {"type": "memory", "read_records_count": 100, "max_records_count": 100000} if storage == "memory" else \
        {"type": "sqlite", "data_file_path": str(d / "data") + "/", "messages_ttl_check_in_hours": 1,
         "messages_ttl_in_days": 7}
    (d / "data").mkdir(exist_ok=True)
    main = {
        "thingsboard": {
            "host": host, "port": port, "remoteShell": False, "remoteConfiguration": False,
            "latencyDebugMode": False, "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False}, "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500, "checkConnectorsConfigurationInSeconds": 3600, "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": USER}, "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": store,
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    (d / "tb_gateway.json").write_text(json.dumps(main, indent=1))
    series = [{"tag": name, "type": "32float", "functionCode": 4, "objectsCount": 2, "address": addr}
              for name, addr in registers]
    slaves = [{"host": "127.0.0.1", "port": modbus_port, "type": "tcp", "method": "socket", "unitId": uid,
               "deviceName": f"meter{uid}", "deviceType": "meter", "timeout": 5, "byteOrder": "BIG",
               "wordOrder": "BIG", "retries": 1, "pollPeriod": int(poll_s * 1000),
               "connectAttemptTimeMs": 1000, "connectAttemptCount": 5, "waitAfterFailedAttemptsMs": 1000,
               "reportStrategy": {"type": "ON_RECEIVED"},
               "attributes": [], "timeseries": series, "attributeUpdates": [], "rpc": []}
              for uid in range(1, meters + 1)]
    (d / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=1))
    return d


def start(exe: str, d: Path) -> subprocess.Popen:
    log = open(d / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([exe, "-m", "thingsboard_gateway.tb_gateway"], cwd=d, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "TB_GW_CONFIG_DIR": str(d) + "/", "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()


def datapoints(payload: bytes) -> int:
    """Datapoints in one ``v1/gateway/telemetry`` message: {"device": [{"ts": .., "values": {..}}, ..]}."""
    n = 0
    for entries in json.loads(payload).values():
        for e in entries if isinstance(entries, list) else [entries]:
            values = e.get("values", e) if isinstance(e, dict) else {}
            n += len(values)
    return n


def answer_session_limits(client, msg) -> bool:
    """Answer the gateway's RPC requests to the server (a paho on_message helper); True when ``msg`` was one."""
    if not msg.topic.startswith("v1/devices/me/rpc/request/"):
        return False
    req = msg.topic.rsplit("/", 1)[1]
    body = SESSION_LIMITS if json.loads(msg.payload).get("method") == "getSessionLimits" else {}
    client.publish(f"v1/devices/me/rpc/response/{req}", json.dumps(body), qos=1)
    return True
