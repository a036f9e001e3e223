"""The status page in a real browser (Debian's chromium, headless, driven by selenium) against the real
agent process with a meter and a charger simulator and a real mosquitto: the page loads, values
update, a meter going down shows, the chart draws, a login sends a command to the charger, a write
without the CSRF token is refused, and the page renders in Chinese.

Set ``WEB_SCREENSHOTS=DIR`` to keep the phone-sized screenshots (docs/web.md uses them)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.web.password import hash_password
from tests.chaos.agent_proc import AgentProcess, wait_until
from tests.sim_thread import simulator

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "plant-room-42"
CURRENT_REGISTER = 0x4100  # ABB Terra AC: current limit, uint32 mA
pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                reason="Debian's chromium and chromium-driver are not installed (tests/run.sh installs them)")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (each held until all are chosen, so none is handed out twice)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def serve(stack: ExitStack, name: str, **kwargs):
    """Enter ``simulator(name)`` on a free port, trying again on another when the machine's ephemeral
    connections (TIME_WAIT on a shared machine) hold the one chosen; returns (handle, port)."""
    for attempt in range(8):
        (port,) = free_ports(1)
        try:
            return stack.enter_context(simulator(name, tcp=f"127.0.0.1:{port}", **kwargs)), port
        except OSError:
            if attempt == 7:
                raise
    raise AssertionError("unreachable")


def browser(lang: str, user_data: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={user_data}", "--window-size=412,1600", f"--lang={lang}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"intl.accept_languages": lang})
    drv = webdriver.Chrome(options=opts, service=Service(DRIVER))
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(30)
    return drv


@pytest.fixture
def gateway(tmp_path: Path, mosquitto) -> Iterator[dict]:
    """Simulators and the agent process with the page on; ``stop_meter()`` takes the meter away."""
    meter, charger_stack = ExitStack(), ExitStack()
    _, meter_port = serve(meter, "sdm120")
    charger, charger_port = serve(charger_stack, "modbus-charger", profile="abb_terra_ac")
    (web_port,) = free_ports(1)
    state = tmp_path / "state"
    state.mkdir()
    (state / "web-password").write_text(hash_password(PASSWORD) + "\n")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'''
[gateway]
id = "gw-plant-room"
state_dir = "{state}"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
[health]
interval = 1
[web]
enabled = true
listen = "127.0.0.1:{web_port}"
[lines.meter]
type = "modbus_tcp"
host = "127.0.0.1"
port = {meter_port}
[lines.charger]
type = "modbus_tcp"
host = "127.0.0.1"
port = {charger_port}
[[devices]]
name = "meter"
type = "modbus_meter"
profile = "sdm120"
line = "meter"
poll_interval = 1
timeout = 0.5
[[devices]]
name = "cp1"
type = "modbus_charger"
line = "charger"
profile = "abb_terra_ac"
writable = ["current_limit"]
''')
    with ExitStack() as stack:
        stack.callback(meter.close)
        stack.callback(charger_stack.close)
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        stack.callback(agent.terminate)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", web_port), timeout=2).close()
                return True
            except OSError:
                return False

        assert wait_until(listening, 120), agent.log_tail()
        yield {"url": f"http://127.0.0.1:{web_port}/", "agent": agent, "stop_meter": meter.close,
               "charger": next(iter(charger.sims.values()))}


@pytest.fixture
def chrome() -> Iterator:
    drivers = []
    dirs = []

    def make(lang: str = "en"):
        d = Path(tempfile.mkdtemp(prefix="chromium-"))
        dirs.append(d)
        drivers.append(browser(lang, d))
        return drivers[-1]

    yield make
    for drv in drivers:
        drv.quit()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def shot(drv, name: str) -> None:
    if target := os.environ.get("WEB_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(Path(target) / name))


def text(drv, css: str) -> str:
    from selenium.common.exceptions import WebDriverException

    try:
        return drv.find_element("css selector", css).text
    except WebDriverException:
        return ""


def attr(drv, css: str, name: str) -> str | None:
    from selenium.common.exceptions import WebDriverException

    try:
        return drv.find_element("css selector", css).get_attribute(name)
    except WebDriverException:
        return None


def test_page_live_values_device_down_login_and_csrf(gateway, chrome) -> None:
    drv = chrome("en")
    drv.get(gateway["url"])
    log = gateway["agent"].log_tail
    assert wait_until(lambda: attr(drv, "#dev-meter", "data-state") == "up"
                      and attr(drv, "#dev-cp1", "data-state") == "up", 120), log()
    assert text(drv, "#devices-card h2") == "Devices"
    assert text(drv, "#gateway") == "gw-plant-room"
    assert "disk free" in text(drv, "#gw")

    voltage = '#dev-meter .val[data-metric="voltage"] b'
    first = text(drv, voltage)
    assert wait_until(lambda: text(drv, voltage) not in ("", first), 60), "the meter's values never changed on the page"
    assert "V" in text(drv, '#dev-meter .val[data-metric="voltage"]')

    drv.find_element("css selector", '#dev-meter .val[data-metric="voltage"]').click()
    assert wait_until(lambda: attr(drv, "#chart polyline", "points") is not None, 90), "no chart of the last samples"
    assert "meter · voltage (V)" in text(drv, "#chart-title")
    shot(drv, "web-en.png")

    # a write without the CSRF token, from the page's own origin with its session cookie: refused
    drv.find_element("id", "password").send_keys(PASSWORD)
    drv.find_element("id", "login").click()
    assert wait_until(lambda: attr(drv, "#cmd-send", "id") == "cmd-send", 30), "login did not show the controls"
    status = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch("/api/command/cp1", {method: "POST", headers: {"Content-Type": "application/json"},
              body: JSON.stringify({action: "set_current_limit", value: 7})}).then(r => done(r.status));""")
    assert status == 403
    sim = gateway["charger"]
    assert [0, 7000] not in [regs for addr, regs in sim.writes if addr == CURRENT_REGISTER]

    from selenium.webdriver.support.ui import Select

    Select(drv.find_element("id", "cmd-device")).select_by_visible_text("cp1")
    Select(drv.find_element("id", "cmd-action")).select_by_visible_text("set_current_limit")
    drv.find_element("id", "cmd-value").send_keys("8")
    drv.find_element("id", "cmd-send").click()
    assert wait_until(lambda: "accepted" in text(drv, "#command-result"), 30), text(drv, "#command-result")
    assert [0, 8000] in [regs for addr, regs in sim.writes if addr == CURRENT_REGISTER]
    assert wait_until(lambda: "command_result" in text(drv, "#events"), 30)

    gateway["stop_meter"]()
    assert wait_until(lambda: attr(drv, "#dev-meter", "data-state") in ("down", "stale"), 60), log()
    assert text(drv, "#dev-meter .badge") in ("DOWN", "STALE")
    assert attr(drv, "#dev-cp1", "data-state") == "up"  # one bad device never hurts the others
    drv.set_window_size(412, 2900)
    shot(drv, "web-down.png")


def test_chinese_page_and_language_switch(gateway, chrome) -> None:
    drv = chrome("zh-CN")
    drv.get(gateway["url"])
    assert wait_until(lambda: attr(drv, "#dev-meter", "data-state") == "up", 120), gateway["agent"].log_tail()
    assert drv.find_element("css selector", "html").get_attribute("lang") == "zh-CN"
    assert text(drv, "#devices-card h2") == "设备"
    assert text(drv, "#dev-meter .badge") == "在线"
    assert text(drv, "#uplink-card h2") == "上行链路"
    assert "磁盘剩余" in text(drv, "#gw")
    shot(drv, "web-zh.png")
    drv.find_element("id", "lang-en").click()
    assert wait_until(lambda: text(drv, "#devices-card h2") == "Devices", 60)
    drv.get(gateway["url"])  # the choice is kept (cookie) over the browser's language
    assert wait_until(lambda: text(drv, "#devices-card h2") == "Devices", 30)


def test_config_edited_in_the_page(gateway, chrome, tmp_path) -> None:
    """Logged in, the technician edits the config file on the page: a wrong value is refused with its line
    shown and nothing changed; a right one is applied (the agent restarts with it) and its version shown."""
    drv = chrome("en")
    drv.get(gateway["url"])
    assert wait_until(lambda: attr(drv, "#dev-cp1", "data-state") == "up", 120), gateway["agent"].log_tail()
    drv.find_element("css selector", "#config-card summary").click()
    assert "Log in to change the configuration." in text(drv, "#config-edit")
    drv.find_element("id", "password").send_keys(PASSWORD)
    drv.find_element("id", "login").click()
    assert wait_until(lambda: "[health]" in (attr(drv, "#config-text", "value") or ""), 30), text(drv, "#config-edit")
    assert attr(drv, "#config-apply", "disabled") is None and text(drv, "#config-problem") == ""
    cfg = tmp_path / "agent.toml"
    original = cfg.read_text()

    def edit(old: str, new: str) -> None:
        drv.execute_script("const t = document.getElementById('config-text'); t.value = t.value.replace(arguments[0], arguments[1]);",
                           old, new)
        drv.find_element("id", "config-apply").click()

    edit("interval = 1\n", 'interval = "soon"\n')
    line = original.splitlines().index("interval = 1") + 1
    assert wait_until(lambda: f"config:{line}: health.interval" in text(drv, "#config-result"), 30), text(drv, "#config-result")
    assert "refused (invalid)" in text(drv, "#config-result")
    assert cfg.read_text() == original
    drv.execute_script("document.getElementById('config-result').scrollIntoView({block: 'end'});")
    shot(drv, "web-config.png")

    edit('interval = "soon"\n', "interval = 2\n")
    assert wait_until(lambda: "Version 1 is in force." in text(drv, "#config-result"), 180), \
        (text(drv, "#config-result"), gateway["agent"].log_tail())
    assert "[health]\ninterval = 2\n" in cfg.read_text()
    assert "Log in to change the configuration." in text(drv, "#config-edit")  # the restart ended the login
