"""A config change from the web page, against the real agent subprocess and a real mosquitto: the file in
force is shown with its secrets as "***" behind the login; an edited one goes through the config push
path (validated, written with a rollback copy, applied by re-executing in place, audited with the web as
its source); a masked secret left as "***" keeps its value; an invalid one is refused naming the line and
changes nothing; no login or no CSRF token, nothing at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from chaos.agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv
from mqtt_helpers import free_port
from test_web import http

from agent.web.password import hash_password

SECRET = "fleet-secret-value"
PASSWORD = "plant-room-42"
GW = "gw-chaos"
BASE = f"edge/{GW}"
START_S = 180  # a start compiles the processing kernels: slow on a loaded machine


def answers(sub, topic: str) -> list[dict]:
    return [m.json() for m in sub.snapshot() if m.topic == topic and m.payload]


def health_config(sub) -> dict | None:
    docs = answers(sub, f"{BASE}/health")
    return docs[-1].get("config") if docs else None


def login(port: int) -> tuple[str, str]:
    status, headers, body = http(port, "/api/login", method="POST", body={"password": PASSWORD})
    assert status == 200, body
    return headers["Set-Cookie"].split(";", 1)[0], json.loads(body)["csrf"]


@pytest.fixture
def gateway(tmp_path: Path, mosquitto, mqtt_subscriber):
    csv = tmp_path / "m.csv"
    write_replay_csv(csv, 100_000)
    web_port = free_port()
    extra = (f'[commands]\nauth = "hmac"\nsecret = "{SECRET}"\n'
             f'[web]\nenabled = true\nlisten = "127.0.0.1:{web_port}"\n')
    config = agent_config(tmp_path, mosquitto, {"m1": csv}, poll=0.5, extra=extra)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "web-password").write_text(hash_password(PASSWORD) + "\n")
    sub = mqtt_subscriber(mosquitto, f"{BASE}/#")
    agent = AgentProcess(config, tmp_path / "agent.log").start()
    try:
        assert wait_until(lambda: health_config(sub) is not None, START_S), agent.log_tail()
        yield agent, config, sub, web_port
    finally:
        agent.terminate()


def test_config_changed_from_the_page_through_the_push_path(gateway) -> None:
    agent, config, sub, port = gateway
    original = config.read_text()
    pid = agent.proc.pid

    assert http(port, "/api/config/file")[0] == 401  # the file only behind the login
    cookie, csrf = login(port)
    status, _, body = http(port, "/api/config/file", cookie=cookie)
    shown = json.loads(body)
    assert status == 200 and shown["problem"] is None and shown["version"] is None
    assert SECRET not in shown["text"] and 'secret = "***"' in shown["text"]

    edited = shown["text"].replace("[health]\ninterval = 1\n", "[health]\ninterval = 2\n")
    assert edited != shown["text"]
    assert http(port, "/api/config", method="POST", body={"config": edited})[0] == 401  # no login
    assert http(port, "/api/config", method="POST", body={"config": edited}, cookie=cookie)[0] == 403  # no CSRF
    assert http(port, "/api/config", method="POST", body={"config": edited}, cookie=cookie,
                headers={"X-CSRF-Token": "forged"})[0] == 403
    assert config.read_text() == original

    status, _, body = http(port, "/api/config", method="POST", body={"config": edited}, cookie=cookie,
                           headers={"X-CSRF-Token": csrf})
    applying = json.loads(body)
    assert status == 202 and applying["status"] == "applying" and applying["version"] == 1, applying
    assert wait_until(lambda: (health_config(sub) or {}).get("version") == 1
                      and health_config(sub)["trial"] is False, START_S), agent.log_tail()
    written = config.read_text()
    assert "[health]\ninterval = 2\n" in written
    assert f'secret = "{SECRET}"' in written and "***" not in written  # the masked secret kept its value
    assert config.with_name(config.name + ".previous").read_text() == original
    assert agent.proc.poll() is None and agent.proc.pid == pid  # re-executed in place

    def results() -> list[dict]:  # published apart from health (waited for above), so it may come later
        return [a for a in answers(sub, f"{BASE}/config/result") if a.get("id") == applying["id"]]
    assert wait_until(lambda: len(results()) >= 2, 60), results()
    assert [r["status"] for r in results()] == ["applying", "applied"], results()
    def audited() -> list[dict]:  # published apart from the result, so it may come later
        return [a for a in answers(sub, f"{BASE}/audit") if a.get("kind") == "config" and a.get("id") == applying["id"]]
    assert wait_until(lambda: {a["step"] for a in audited()} == {"applying", "applied"}, 60), audited()
    audit = audited()
    staged = next(a for a in audit if a["step"] == "applying")
    assert staged["source"] == "web" and staged["auth"] == "login" and staged["peer"] == "127.0.0.1"

    # the page shows the new version (a login lasts as long as the process: log in again)
    status, _, body = http(port, "/api/state")
    assert status == 200 and json.loads(body)["health"]["config"]["version"] == 1
    cookie, _ = login(port)
    assert json.loads(http(port, "/api/config/file", cookie=cookie)[2])["version"] == 1


def test_invalid_config_from_the_page_refused_with_its_line(gateway) -> None:
    agent, config, sub, port = gateway
    original = config.read_text()
    cookie, csrf = login(port)
    text = json.loads(http(port, "/api/config/file", cookie=cookie)[2])["text"]

    def send(edited: str) -> tuple[int, dict]:
        status, _, body = http(port, "/api/config", method="POST", body={"config": edited}, cookie=cookie,
                               headers={"X-CSRF-Token": csrf})
        return status, json.loads(body)

    status, bad = send(text.replace("[health]\ninterval = 1\n", '[health]\ninterval = "soon"\n'))
    line = text.splitlines().index("interval = 1") + 1
    assert status == 400 and bad["status"] == "refused" and bad["code"] == "invalid", bad
    assert f"config:{line}: health.interval" in bad["reason"], bad["reason"]

    status, no_value = send(text.replace('[mqtt]\n', '[mqtt]\npassword = "***"\n'))
    assert status == 400 and no_value["code"] == "invalid"
    line = text.splitlines().index("[mqtt]") + 2
    assert f"config:{line}: mqtt.password" in no_value["reason"], no_value["reason"]

    assert config.read_text() == original  # nothing changed
    assert not config.with_name(config.name + ".previous").exists()
    refused = [a for a in answers(sub, f"{BASE}/audit") if a.get("kind") == "config" and a["step"] == "refused"]
    assert wait_until(lambda: len([a for a in answers(sub, f"{BASE}/audit") if a.get("kind") == "config"
                                   and a["step"] == "refused" and a.get("source") == "web"]) == 2, 60), refused
    status, _, body = http(port, "/api/state")
    assert json.loads(body)["health"]["config"] == {**json.loads(body)["health"]["config"], "version": None,
                                                    "trial": False}
    assert agent.proc.poll() is None


def _can_mount_read_only() -> bool:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / / && mount -o remount,ro,bind / /"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not _can_mount_read_only(),
                    reason="needs a private mount namespace (root; unshare -m) for a read-only config directory")
def test_read_only_config_directory_said_on_the_page(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    """As under the shipped unit (ProtectSystem=strict): the config directory is read-only to the agent (a
    bind mount in its own mount namespace): the page says so with the fix, and a change is refused, audited."""
    csv = tmp_path / "m.csv"
    write_replay_csv(csv, 100_000)
    web_port = free_port()
    config = agent_config(tmp_path, mosquitto, {"m1": csv}, poll=0.5,
                          extra=f'[web]\nenabled = true\nlisten = "127.0.0.1:{web_port}"\n')
    etc = tmp_path / "etc"
    etc.mkdir()
    config = config.rename(etc / "agent.toml")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "web-password").write_text(hash_password(PASSWORD) + "\n")
    sub = mqtt_subscriber(mosquitto, f"{BASE}/#")
    script = (f'mount --bind "{etc}" "{etc}" && mount -o remount,ro,bind "{etc}" "{etc}" && '
              f'exec "{sys.executable}" -m agent.cli.main run --config "{config}"')
    with open(tmp_path / "agent.log", "ab") as log:
        proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert wait_until(lambda: health_config(sub) is not None, START_S), (tmp_path / "agent.log").read_text()
        cookie, csrf = login(web_port)
        shown = json.loads(http(web_port, "/api/config/file", cookie=cookie)[2])
        assert shown["text"] and f"ReadWritePaths={etc}" in shown["problem"], shown["problem"]
        edited = shown["text"].replace("[health]\ninterval = 1\n", "[health]\ninterval = 2\n")
        status, _, body = http(web_port, "/api/config", method="POST", body={"config": edited}, cookie=cookie,
                               headers={"X-CSRF-Token": csrf})
        refused = json.loads(body)
        assert status == 409 and refused["code"] == "cannot_record" and "ReadWritePaths" in refused["reason"]
        assert wait_until(lambda: any(a.get("kind") == "config" and a.get("code") == "cannot_record"
                                      and a.get("source") == "web" for a in answers(sub, f"{BASE}/audit")), 60)
        assert "interval = 1\n" in config.read_text() and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
