"""The web page over real HTTP from a running agent (real mosquitto, the real Modbus charger simulator):
reads are open, writes need a login and the session's CSRF token and go through the command path's
gate and audit; secrets never leave the gateway; the page is imported only when it is on."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from mqtt_helpers import free_port

from agent.app import Agent
from agent.config import load_config_text
from agent.series import LatestValues
from agent.web.history import History
from agent.web.http import Request
from agent.web.password import hash_password, verify
from agent.web.server import pick_language
from tests.charger_agent import charger_config, current_writes

GW = "gw-web"
PASSWORD = "plant-room-42"


def http(port: int, path: str, *, method: str = "GET", body: dict | None = None, headers: dict | None = None,
         cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    if cookie:
        req.add_header("Cookie", cookie)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
async def web_agent(tmp_path, mosquitto, charger):
    """A running agent with the page on and a password set; yields (web port, charger sim)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "web-password").write_text(hash_password(PASSWORD) + "\n")
    port = free_port()
    web = f'[web]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    agent = Agent(load_config_text(charger_config(
        GW, state, mosquitto, charger[0], extra=web + '[commands]\nauth = "hmac"\nsecret = "hmac-secret-value"\n')))
    task = asyncio.create_task(agent.run())

    async def up() -> None:
        while True:
            try:
                status, _, body = await asyncio.to_thread(http, port, "/api/state")
                if status == 200 and json.loads(body)["health"]["devices"]["cp1"]["up"]:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)

    await asyncio.wait_for(up(), 120)
    yield port, charger[1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_writes_need_login_and_csrf_and_go_through_gate_and_audit(web_agent, mosquitto, mqtt_subscriber):
    port, sim = web_agent
    audit = mqtt_subscriber(mosquitto, f"edge/{GW}/audit")
    call = asyncio.to_thread
    write = {"action": "set_current_limit", "value": 10}
    before = len(current_writes(sim))

    status, _, _ = await call(http, port, "/api/command/cp1", method="POST", body=write)
    assert status == 401  # no login
    status, _, _ = await call(http, port, "/api/login", method="POST", body={"password": "wrong-password"})
    assert status == 401
    status, headers, body = await call(http, port, "/api/login", method="POST", body={"password": PASSWORD})
    assert status == 200, body
    cookie_header = headers["Set-Cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=Strict" in cookie_header
    cookie = cookie_header.split(";", 1)[0]
    csrf = json.loads(body)["csrf"]

    status, _, _ = await call(http, port, "/api/command/cp1", method="POST", body=write, cookie=cookie)
    assert status == 403  # logged in, but no CSRF token
    status, _, _ = await call(http, port, "/api/command/cp1", method="POST", body=write, cookie=cookie,
                              headers={"X-CSRF-Token": "not-the-token"})
    assert status == 403
    assert len(current_writes(sim)) == before, "a refused write reached the charger"

    status, _, body = await call(http, port, "/api/command/cp1", method="POST", body=write, cookie=cookie,
                                 headers={"X-CSRF-Token": csrf})
    result = json.loads(body)
    assert status == 200 and result["status"] == "accepted", result
    assert current_writes(sim)[-1] == [0, 10000]  # 10 A in mA, through the write gate

    status, _, body = await call(http, port, "/api/command/cp1", method="POST", cookie=cookie,
                                 body={"action": "set_current_limit", "value": 500}, headers={"X-CSRF-Token": csrf})
    assert json.loads(body)["status"] == "refused" and json.loads(body)["code"] == "out_of_range"

    got = await call(audit.wait_for, 2, 30, predicate=lambda m: m.json().get("source") == "web")
    records = [m.json() for m in got]
    assert [r["status"] for r in records] == ["accepted", "refused"]
    assert all(r["auth"] == "login" and r["device"] == "cp1" for r in records)

    status, _, body = await call(http, port, "/api/state", cookie=cookie)
    assert json.loads(body)["login"]["csrf"] == csrf  # the page learns its token from its own session
    status, _, _ = await call(http, port, "/api/logout", method="POST", cookie=cookie, headers={"X-CSRF-Token": csrf})
    assert status == 200
    status, _, _ = await call(http, port, "/api/command/cp1", method="POST", body=write, cookie=cookie,
                              headers={"X-CSRF-Token": csrf})
    assert status == 401  # the session ended


async def test_state_config_language_and_login_limit(web_agent):
    port, _ = web_agent
    call = asyncio.to_thread
    status, headers, body = await call(http, port, "/api/state")
    state = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert state["health"]["gateway"] == GW and state["writable"] == {"cp1": ["current_limit"]}
    metrics = {v["metric"]: v for v in state["values"]["cp1"]}
    assert metrics and all("unit" in v and isinstance(v["flags"], list) for v in metrics.values())
    assert state["login"] == {"available": True, "csrf": None}
    assert 0 < state["disk"]["free"] <= state["disk"]["total"]

    status, _, body = await call(http, port, "/api/config")
    text = body.decode()
    assert status == 200 and "hmac-secret-value" not in text and json.loads(text)["commands"]["secret"] != ""
    assert json.loads(text)["web"]["listen"] == f"127.0.0.1:{port}"

    _, _, page = await call(http, port, "/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert b'<html lang="zh-CN">' in page
    _, _, page = await call(http, port, "/?lang=en", headers={"Accept-Language": "zh-CN"})
    assert b'<html lang="en">' in page
    status, _, _ = await call(http, port, "/api/state", method="POST")
    assert status == 405
    status, _, _ = await call(http, port, "/nothing")
    assert status == 404

    for _ in range(5):
        status, _, _ = await call(http, port, "/api/login", method="POST", body={"password": "guess-guess"})
        assert status == 401
    status, headers, _ = await call(http, port, "/api/login", method="POST", body={"password": PASSWORD})
    assert status == 429 and int(headers["Retry-After"]) > 0  # even the right password waits


async def test_requests_beyond_the_limits_are_refused(web_agent):
    port, _ = web_agent

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    huge_head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await asyncio.to_thread(raw, huge_head)).startswith(b"HTTP/1.1 400")
    big_body = b"POST /api/login HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"
    assert (await asyncio.to_thread(raw, big_body)).startswith(b"HTTP/1.1 413")
    assert (await asyncio.to_thread(raw, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")


def test_history_ring_is_bounded_and_in_order() -> None:
    latest = LatestValues(2)
    hist = History(2, slots=4)
    for i in range(1, 11):
        latest.value[0], latest.ts[0] = float(i), 1000 * i
        assert hist.sample(latest) == 1  # series 1 never had a reading: not sampled
        assert hist.sample(latest) == 0  # nothing newer: no second sample of the same reading
    ts, values = hist.series(0)
    assert ts == [7000, 8000, 9000, 10000] and values == [7.0, 8.0, 9.0, 10.0]
    assert hist.series(0, since_ms=8500) == ([9000, 10000], [9.0, 10.0])
    assert hist.series(1) == ([], [])


def test_language_from_query_cookie_or_browser() -> None:
    def req(accept: str = "", query: dict | None = None, cookie: str = "") -> Request:
        return Request("GET", "/", query or {}, {"accept-language": accept, "cookie": cookie})

    assert pick_language(req("zh-CN,zh;q=0.9,en;q=0.8")) == "zh-CN"
    assert pick_language(req("en-GB,en;q=0.9,zh;q=0.8")) == "en"
    assert pick_language(req("fr;q=0.9,zh-TW;q=0.5")) == "zh-CN"
    assert pick_language(req("de")) == "en"
    assert pick_language(req("zh", cookie="lang=en")) == "en"
    assert pick_language(req("en", query={"lang": "zh-CN"}, cookie="lang=en")) == "zh-CN"


def test_password_is_stored_hashed() -> None:
    stored = hash_password(PASSWORD)
    assert PASSWORD not in stored and stored.startswith("scrypt$")
    assert verify(PASSWORD, stored) and not verify("plant-room-43", stored)
    assert hash_password(PASSWORD) != stored  # salted
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


PROBE = """
import asyncio, json, sys
from agent.app import Agent
from agent.config import load_config_text
async def main():
    agent = Agent(load_config_text(sys.argv[1]))
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(4)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.startswith("agent.web."))))
"""


@pytest.mark.parametrize("enabled", [False, True])
def test_page_code_is_imported_only_when_enabled(tmp_path, enabled) -> None:
    web = f'[web]\nenabled = true\nlisten = "127.0.0.1:{free_port()}"\n' if enabled else ""
    text = f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n{web}'
    p = subprocess.run([sys.executable, "-c", PROBE, text], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    loaded = json.loads(p.stdout.strip().splitlines()[-1])
    assert ("agent.web.server" in loaded) is enabled and ("agent.web.http" in loaded) is enabled
    if not enabled:
        # the section only: its model (config validation needs it) and the address helpers it shares with
        # the plain config the run time reads
        assert loaded == ["agent.web.config", "agent.web.listen"]


def test_setup_stores_the_web_password_hashed(tmp_path) -> None:
    from click.testing import CliRunner

    from agent.cli.main import cli
    from agent.setup.install import SetupOptions
    from agent.setup.steps import Report
    from agent.setup.web_password import install_web_password
    from agent.web.password import read_hash

    short = CliRunner().invoke(cli, ["setup", "--root", str(tmp_path / "r1"), "--web-password"], input="short\n")
    assert short.exit_code == 2 and "at least 8 characters" in short.output
    assert not (tmp_path / "r1").exists()  # refused before anything was laid out

    opts, report = SetupOptions(root=tmp_path / "r2"), Report()
    path = tmp_path / "r2/var/lib/edge-agent/web-password"
    path.parent.mkdir(parents=True)
    install_web_password(report, opts, PASSWORD)
    stored = read_hash(path)
    assert stored is not None and PASSWORD not in path.read_text() and verify(PASSWORD, stored)
    assert path.stat().st_mode & 0o777 == 0o600
    install_web_password(report, opts, PASSWORD)
    assert report.lines[-1] == ("ok", f"{path}: web password unchanged") and read_hash(path) == stored
    install_web_password(report, opts, "another-password")
    assert report.lines[-1][0] == "changed" and verify("another-password", read_hash(path))
