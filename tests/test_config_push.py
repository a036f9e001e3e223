"""Remote operations with the real agent subprocess and a real mosquitto: a signed config push applied
(the agent re-executes itself, same PID) and reported in health; one that cannot reach the broker rolled
back within its timeout; bad signature, invalid, replayed, retained and oversized pushes refused, audited
and changing nothing; status and doctor answered on their result topics."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import jsonschema
import orjson
import paho.mqtt.publish as publish
import pytest
from chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv
from mqtt_helpers import free_port

from agent.remote import MAX_PUSH_BYTES, ops_token, sign_config

SECRET = "fleet-secret"
GW = "gw-chaos"
BASE = f"edge/{GW}"
COMMANDS = f'[commands]\nauth = "hmac"\nsecret = "{SECRET}"\n'
START_S = 180  # a start compiles the processing kernels: slow on a loaded machine


def push_body(config: str, version: int, cid: str, *, timeout_s: float = 60.0, secret: str = SECRET) -> bytes:
    ts = int(time.time() * 1000)
    return orjson.dumps({"id": cid, "version": version, "ts": ts, "config": config, "timeout_s": timeout_s,
                         "signature": sign_config(secret, GW, cid, version, ts, config, timeout_s)})


def send(broker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    publish.single(topic, payload, qos=1, retain=retain, hostname=broker.host, port=broker.port)


def answers(sub, topic: str) -> list[dict]:
    return [m.json() for m in sub.snapshot() if m.topic == topic and m.payload]


def audited(sub, match, timeout: float = 60) -> bool:
    """An audit record matching arrives (it is published apart from the result, so it may come later)."""
    return wait_until(lambda: any(match(a) for a in answers(sub, f"{BASE}/audit")), timeout)


def answer(sub, topic: str, cid: str, status: str | None = None, timeout: float = START_S) -> dict:
    ok = wait_until(lambda: any(a.get("id") == cid and (status is None or a["status"] == status)
                                for a in answers(sub, topic)), timeout)
    assert ok, f"no {status or 'answer'} for {cid} on {topic}: {answers(sub, topic)}"
    return [a for a in answers(sub, topic) if a.get("id") == cid and (status is None or a["status"] == status)][-1]


SCHEMA = orjson.loads((Path(__file__).resolve().parents[1] / "docs" / "payload.schema.json").read_bytes())


def assert_documented(sub) -> None:
    """Every answer and audit record sent matches docs/payload.schema.json."""
    def check(name: str, body: dict) -> None:
        jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{name}"}).validate(body)

    seen = set()
    for m in sub.snapshot():
        if not m.payload:
            continue
        if m.topic.endswith("/config/result"):
            check("config_result", m.json())
            seen.add("config_result")
        elif m.topic.startswith(f"{BASE}/ops/") and m.topic.endswith("/result"):
            check("ops_result", m.json())
            seen.add("ops_result")
        elif m.topic == f"{BASE}/audit":
            check("audit", m.json())
    assert seen


def health_config(sub) -> dict | None:
    docs = answers(sub, f"{BASE}/health")
    return docs[-1].get("config") if docs else None


class NotifySocket:
    """A systemd notify socket: what the agent tells systemd, in order."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines += self.sock.recv(4096).decode().splitlines()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def gateway(tmp_path: Path, mosquitto, mqtt_subscriber, monkeypatch):
    csv = tmp_path / "m.csv"
    write_replay_csv(csv, 100_000)
    config = agent_config(tmp_path, mosquitto, {"m1": csv}, poll=0.5, extra=COMMANDS)
    sub = mqtt_subscriber(mosquitto, f"{BASE}/#")
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    agent = AgentProcess(config, tmp_path / "agent.log").start()
    agent.notify = notify
    try:
        assert wait_until(lambda: health_config(sub) is not None, START_S), agent.log_tail()
        yield agent, config, sub
    finally:
        agent.terminate()
        notify.close()


def test_good_config_applied_and_reported_bad_ones_refused(gateway, mosquitto) -> None:
    agent, config, sub = gateway
    original = config.read_text()
    assert health_config(sub)["version"] is None
    pid = agent.proc.pid

    pushed = original.replace("[health]\ninterval = 1\n", "[health]\ninterval = 2\n")
    assert pushed != original
    send(mosquitto, f"{BASE}/config/set", push_body(pushed, 7, "cfg-7"))
    applying = answer(sub, f"{BASE}/config/result", "cfg-7", "applying")
    assert applying["version"] == 7 and applying["previous_version"] is None
    applied = answer(sub, f"{BASE}/config/result", "cfg-7", "applied")
    print(f"push applied {(applied['ts'] - applying['ts']) / 1000:.1f} s after it was staged")
    assert applied["active_version"] == 7
    # health is published apart from the result: a report from the trial (trial true) may come after it
    assert wait_until(lambda: (health_config(sub) or {}).get("version") == 7 and health_config(sub)["trial"] is False,
                      START_S), (health_config(sub), agent.log_tail())
    assert config.read_text() == pushed
    assert config.with_name(config.name + ".previous").read_text() == original
    assert agent.proc.poll() is None and agent.proc.pid == pid  # re-executed in place
    # as `edge-agent run`: the pushed config validated like any other, then run by the run-time process
    assert agent.log.read_text().count(f"config {config} loaded") == 2, agent.log_tail()
    assert {b"-OO", b"agent.runtime"} <= set(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    # systemd hears a reload, not a stop (STOPPING=1 would have it kill the re-executed agent)
    said = [line for line in agent.notify.lines if line in ("READY=1", "RELOADING=1", "STOPPING=1")]
    assert said == ["READY=1", "RELOADING=1", "READY=1"], said

    bad = [("cfg-replay", push_body(pushed, 7, "cfg-replay"), "stale_version"),
           ("cfg-old", push_body(pushed, 3, "cfg-old"), "stale_version"),
           ("cfg-sig", push_body(pushed, 8, "cfg-sig", secret="wrong"), "unauthorised"),
           ("cfg-bad", push_body(pushed + "\n[mqtt_typo]\nx = 1\n", 9, "cfg-bad"), "invalid"),
           ("cfg-gw", push_body(pushed.replace(f'id = "{GW}"', 'id = "other"'), 10, "cfg-gw"), "invalid")]
    for _cid, payload, _ in bad:
        send(mosquitto, f"{BASE}/config/set", payload)
    for cid, _, code in bad:
        refused = answer(sub, f"{BASE}/config/result", cid, "refused", timeout=60)
        assert refused["code"] == code, refused
        assert audited(sub, lambda a, cid=cid, code=code: a.get("kind") == "config" and a.get("id") == cid
                       and a["code"] == code), cid
    send(mosquitto, f"{BASE}/config/set", b"x" * (MAX_PUSH_BYTES + 1))
    assert wait_until(lambda: any(a.get("code") == "too_large" for a in answers(sub, f"{BASE}/config/result")), 60)
    send(mosquitto, f"{BASE}/config/set", push_body(pushed, 11, "cfg-ret"), retain=True)
    assert wait_until(lambda: any(a.get("code") == "retained" for a in answers(sub, f"{BASE}/config/result")), 60)

    assert config.read_text() == pushed  # nothing changed
    assert health_config(sub)["version"] == 7
    for step in ("applying", "applied"):
        assert audited(sub, lambda a, step=step: a.get("kind") == "config" and (a["id"], a["step"]) == ("cfg-7", step)), step
    assert_documented(sub)


def test_config_that_cannot_reach_the_broker_is_rolled_back(gateway, mosquitto) -> None:
    agent, config, sub = gateway
    original = config.read_text()
    dead = original.replace(f"port = {mosquitto.port}\n", f"port = {free_port()}\n")
    assert dead != original
    send(mosquitto, f"{BASE}/config/set", push_body(dead, 5, "cfg-dead", timeout_s=5))
    rolled = answer(sub, f"{BASE}/config/result", "cfg-dead", "rolled_back")
    staged = answer(sub, f"{BASE}/config/result", "cfg-dead", "applying")
    print(f"unreachable broker: rolled back {(rolled['ts'] - staged['ts']) / 1000:.1f} s after staging (timeout 5 s)")
    assert rolled["code"] == "rolled_back" and "within 5 s" in rolled["reason"]
    assert rolled["active_version"] is None
    assert config.read_text() == original
    assert config.with_name(config.name + ".rejected").read_text() == dead
    assert audited(sub, lambda a: a.get("kind") == "config" and a.get("step") == "rolled_back")
    assert wait_until(lambda: answers(sub, f"{BASE}/health")[-1]["uptime_s"] < 30
                      and health_config(sub) == {**health_config(sub), "version": None, "trial": False}, 60)
    assert agent.proc.poll() is None

    # the same version again is a replay, even though it never became active
    send(mosquitto, f"{BASE}/config/set", push_body(original, 5, "cfg-again"))
    assert answer(sub, f"{BASE}/config/result", "cfg-again", "refused", timeout=60)["code"] == "stale_version"
    assert_documented(sub)


def test_status_and_doctor_answered_on_request(gateway, mosquitto) -> None:
    agent, _, sub = gateway
    assert wait_until(lambda: answers(sub, f"{BASE}/health")[-1]["devices"]["m1"]["up"], START_S), agent.log_tail()
    for op in ("status", "doctor"):
        ts = int(time.time() * 1000)
        send(mosquitto, f"{BASE}/ops/{op}",
             orjson.dumps({"id": f"{op}-1", "ts": ts, "token": ops_token(SECRET, GW, op, f"{op}-1", ts)}))
    status = answer(sub, f"{BASE}/ops/status/result", "status-1", timeout=60)
    assert status["status"] == "accepted" and status["health"]["gateway"] == GW
    assert "m1" in status["health"]["devices"] and status["config"]["version"] is None
    doctor = answer(sub, f"{BASE}/ops/doctor/result", "doctor-1", timeout=120)
    assert doctor["status"] == "accepted"
    subjects = {c["subject"]: c["mark"] for c in doctor["checks"]}
    assert any(s.startswith("broker") and m == "ok" for s, m in subjects.items()), doctor
    assert subjects["device m1"] == "ok", [c for c in doctor["checks"] if c["subject"] == "device m1"]
    assert doctor["failed"] == sum(c["mark"] == "fail" for c in doctor["checks"])

    send(mosquitto, f"{BASE}/ops/status", orjson.dumps({"id": "status-2", "token": "0" * 64}))
    refused = answer(sub, f"{BASE}/ops/status/result", "status-2", timeout=60)
    assert refused["code"] == "unauthorised" and "health" not in refused
    assert audited(sub, lambda a: a.get("kind") == "ops" and a.get("id") == "status-2" and a["status"] == "refused")
    assert_documented(sub)


def test_config_that_cannot_start_is_rolled_back(gateway, mosquitto, silent_port) -> None:
    """Valid on paper, but its start fails (the metrics address is taken): the previous config runs again."""
    agent, config, sub = gateway
    original = config.read_text()
    busy = original + f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{silent_port}"\n'
    send(mosquitto, f"{BASE}/config/set", push_body(busy, 4, "cfg-busy"))
    answer(sub, f"{BASE}/config/result", "cfg-busy", "applying")
    rolled = answer(sub, f"{BASE}/config/result", "cfg-busy", "rolled_back")
    assert "OSError" in rolled["reason"] or "address" in rolled["reason"], rolled
    assert config.read_text() == original
    # the run-time process that failed started `run` again: the previous config validated again
    assert agent.log.read_text().count(f"config {config} loaded") == 3, agent.log_tail()
    assert agent.proc.poll() is None
