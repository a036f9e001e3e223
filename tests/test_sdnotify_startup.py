"""Start-up under systemd: the agent extends its start timeout before it loads anything heavy or reads
its config, at each step of the start-up, and while a slow kernel compile runs (with watchdog pings),
so a slow start cannot restart-loop the service. systemd's side is a real unix datagram socket, as
NOTIFY_SOCKET is; the real `edge-agent run` subprocess where the start-up itself is the subject."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config import load_config_text
from agent.sdnotify import START_UP_S, Notifier

SAMPLES = Path(__file__).resolve().parents[1] / "drivers" / "replay" / "samples"


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: every datagram, in order."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"systemd did not hear what it should within {timeout} s: {self.messages}")
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        return list(self.messages)

    def close(self) -> None:
        self.sock.close()


def config_text(tmp_path, mosquitto) -> str:
    """A gateway replaying one building's load to the test broker."""
    return f'''
[gateway]
id = "gw-sd"
state_dir = "{tmp_path / 'state'}"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
[[devices]]
name = "load"
type = "replay"
file = "{SAMPLES / 'building_load_kw.csv'}"
metric = "power"
poll_interval = 0.5
'''


def count(messages: list[str], field: str) -> int:
    return sum(1 for m in messages if any(line.startswith(field) for line in m.splitlines()))


async def test_a_slow_kernel_compile_extends_the_start_and_pings_the_watchdog_before_ready(tmp_path, mosquitto):
    config = load_config_text(config_text(tmp_path, mosquitto))
    systemd = FakeSystemd(tmp_path / "notify")
    # WatchdogSec=0.4 s: pings due every 0.2 s
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"})
    release, compiled = threading.Event(), threading.Event()

    def slow_warm() -> dict:  # a cold cache on a slow Pi: done when the test says so
        release.wait(120)
        result = agent.processor.prepare()
        compiled.set()
        return result

    agent = Agent(config, notifier=notifier, warm_kernels=slow_warm)
    task = asyncio.create_task(agent.run())
    try:
        during = await asyncio.to_thread(
            systemd.wait_for, lambda m: count(m, "WATCHDOG=1") >= 3 and count(m, "EXTEND_TIMEOUT_USEC=") >= 3)
        assert not compiled.is_set()
        assert count(during, "READY=1") == 0  # not ready while compiling ...
        extension = next(line for m in during for line in m.splitlines() if line.startswith("EXTEND_TIMEOUT_USEC="))
        assert int(extension.split("=")[1]) > 200_000  # ... but each extension outlasts the next ping
        assert any("STATUS=compiling processing kernels" in m for m in during)
        release.set()
        after = await asyncio.to_thread(systemd.wait_for, lambda m: count(m, "READY=1") == 1)
        assert compiled.is_set()
        ready_at = next(i for i, m in enumerate(after) if "READY=1" in m.splitlines())
        assert ready_at >= len(during)
        # once running, the pipeline's watchdog loop keeps pinging
        await asyncio.to_thread(systemd.wait_for, lambda m: count(m[ready_at:], "WATCHDOG=1") >= 2)
    finally:
        release.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        systemd.close()


def fields(messages: list[str]) -> list[tuple[str, str]]:
    """Each message's EXTEND_TIMEOUT_USEC/READY and STATUS, in the order systemd heard them."""
    out = []
    for m in messages:
        lines = dict(line.split("=", 1) for line in m.splitlines() if "=" in line)
        kind = "READY" if lines.get("READY") == "1" else "EXTEND" if "EXTEND_TIMEOUT_USEC" in lines else ""
        if kind:
            out.append((kind, lines.get("STATUS", "")))
    return out


def edge_agent_run(config: Path, notify: Path) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_USEC", None)
    return subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_the_command_line_loads_no_command_until_one_runs() -> None:
    """What runs before `run` can tell systemd anything is the entry module: it imports no command."""
    code = "import sys, agent.cli.main; print(' '.join(m for m in sys.modules if m.startswith('agent')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert loaded and not [m for m in loaded if m.startswith(("agent.cli.cmd_", "agent.config"))], loaded


def test_run_extends_the_start_before_it_reads_the_config(tmp_path) -> None:
    """A start that ends at the config still told systemd first: the extension comes before the config
    is read, long enough for the slowest step of the start-up."""
    config = tmp_path / "agent.toml"
    config.write_text('[gateway]\nid = "gw-sd"\n[mqtt]\nhost = "127.0.0.1"\n[mqtt_typo]\nx = 1\n')
    systemd = FakeSystemd(tmp_path / "notify")
    try:
        proc = edge_agent_run(config, tmp_path / "notify")
        out = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode == 2, out  # the config error, as before
        heard = fields(systemd.wait_for(lambda m: count(m, "EXTEND_TIMEOUT_USEC=") >= 1))
        assert heard == [("EXTEND", "starting: loading the program and the config")], heard
        usec = next(int(line.split("=")[1]) for m in systemd.messages for line in m.splitlines()
                    if line.startswith("EXTEND_TIMEOUT_USEC="))
        assert usec == int(START_UP_S * 1e6) and START_UP_S >= 60
    finally:
        systemd.close()


def test_run_tells_systemd_at_every_step_of_its_start_in_order(tmp_path, mosquitto) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(config_text(tmp_path, mosquitto))
    systemd = FakeSystemd(tmp_path / "notify")
    proc = edge_agent_run(config, tmp_path / "notify")
    try:
        heard = fields(systemd.wait_for(lambda m: count(m, "READY=1") == 1, timeout=600))
        kinds = [k for k, _ in heard]
        assert kinds[-1] == "READY" and set(kinds[:-1]) == {"EXTEND"}, heard
        assert heard[0] == ("EXTEND", "starting: loading the program and the config"), heard
        assert heard[1] == ("EXTEND", "starting: config valid, 1 device(s); opening the state"), heard
        assert heard[2][1].startswith("compiling processing kernels"), heard
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
        systemd.close()
