"""Start-up under systemd: a slow kernel compile keeps systemd informed (start-timeout extensions and
watchdog pings) before READY, so a cold cache cannot restart-loop the service. systemd's side is a
real unix datagram socket, as NOTIFY_SOCKET is."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config import load_config_text
from agent.sdnotify import Notifier

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


def count(messages: list[str], field: str) -> int:
    return sum(1 for m in messages if any(line.startswith(field) for line in m.splitlines()))


async def test_a_slow_kernel_compile_extends_the_start_and_pings_the_watchdog_before_ready(tmp_path, mosquitto):
    config = load_config_text(f'''
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
''')
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
