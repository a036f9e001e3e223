"""SIGTERM ends the real agent within a bounded time whatever a driver does.

A driver that swallows cancellations (as ``asyncio.wait_for`` does on Python 3.11 when the reply is
already there) must not keep the agent alive: systemd would SIGKILL it, with no final commit and no
clean ``offline``. The misbehaving drivers are registered like a third-party plugin: a distribution
on PYTHONPATH whose ``edge_agent.drivers`` entry points name them.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from agent.store.outbox import Outbox

from .agent_proc import AgentProcess, agent_config, wait_until

pytestmark = pytest.mark.timeout(180)

PLUGINS = Path(__file__).parent / "plugins"
STOP_WITHIN_S = 40  # generous: shutdown is bounded to about a dozen seconds; systemd allows 90


@pytest.fixture
def misbehaving_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """Install tests/chaos/plugins/misbehaving_driver.py as a plugin for agent subprocesses."""
    site = tmp_path / "site"
    dist = site / "edge_agent_misbehaving_drivers-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: edge-agent-misbehaving-drivers\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edge_agent.drivers]\n"
                                           "swallow_cancel = misbehaving_driver:SWALLOW_CANCEL\n"
                                           "never_returns = misbehaving_driver:NEVER_RETURNS\n")
    path = [str(site), str(PLUGINS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    # one numba cache for these tests: kernels compile once, not once per agent
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "numba-cache"))


def start_agent(tmp_path: Path, broker, devices: str) -> AgentProcess:
    config = agent_config(tmp_path, broker, {}, extra=devices)
    return AgentProcess(config, tmp_path / "agent.log").start()


def sigterm_and_wait(agent: AgentProcess) -> tuple[int, int]:
    """SIGTERM; returns (exit code, wall-clock ms when it was sent). Fails if the agent does not exit."""
    sent_ms = time.time_ns() // 1_000_000
    agent.proc.terminate()
    try:
        code = agent.proc.wait(STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        agent.kill9()
        pytest.fail(f"the agent had not exited {STOP_WITHIN_S} s after SIGTERM\n{agent.log_tail()}")
    return code, sent_ms


def clean_offline_after(sub, sent_ms: int) -> bool:
    """A retained ``offline`` stamped at shutdown; the broker's last will carries the connect time."""
    for m in sub.snapshot():
        if m.topic.endswith("/status"):
            body = m.json()
            if body["state"] == "offline" and body["ts"] >= sent_ms:
                return True
    return False


def committed_values(sub, state: Path, device: str) -> set[float]:
    values = set()
    payloads = [m.payload for m in sub.snapshot() if m.topic.endswith(f"/telemetry/{device}")]
    with Outbox(state / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw-chaos") as ob:
        payloads += [row.payload for row in ob.peek(1_000_000) if row.topic.endswith(f"/telemetry/{device}")]
    for p in payloads:
        values.update(r["value"] for r in orjson.loads(p)["readings"])
    return values


def test_sigterm_stops_an_agent_whose_driver_swallows_cancellation(
        tmp_path: Path, mosquitto, mqtt_subscriber, misbehaving_drivers) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    # the poller is always inside read(): the cancellation always lands where it is swallowed
    agent = start_agent(tmp_path, mosquitto, '[[devices]]\nname = "busy-line"\ntype = "swallow_cancel"\n'
                                             'poll_interval = 0.01\n')
    try:
        assert wait_until(lambda: any("/telemetry/busy-line" in m.topic for m in sub.snapshot()), 90), \
            agent.log_tail()
        code, sent_ms = sigterm_and_wait(agent)
    finally:
        agent.kill9()
    assert code == 0, agent.log_tail()
    assert wait_until(lambda: clean_offline_after(sub, sent_ms), 60), "no clean offline status after SIGTERM"
    returned = (tmp_path / "state" / "busy-line.returned").read_text().split()
    # the reading returned by the read that swallowed the cancellation is in the final commit
    assert float(returned[-1]) in committed_values(sub, tmp_path / "state", "busy-line")


def test_sigterm_stops_an_agent_whose_driver_never_returns(
        tmp_path: Path, mosquitto, mqtt_subscriber, misbehaving_drivers) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    agent = start_agent(tmp_path, mosquitto,
                        '[[devices]]\nname = "stuck"\ntype = "never_returns"\npoll_interval = 1\n'
                        '[[devices]]\nname = "busy-line"\ntype = "swallow_cancel"\npoll_interval = 0.01\n')
    try:
        assert wait_until(lambda: any("/telemetry/busy-line" in m.topic for m in sub.snapshot()), 90), \
            agent.log_tail()
        code, sent_ms = sigterm_and_wait(agent)
    finally:
        agent.kill9()
    assert code == 0, agent.log_tail()
    assert wait_until(lambda: clean_offline_after(sub, sent_ms), 60), "no clean offline status after SIGTERM"
    assert "poll:stuck" in agent.log_tail(), "the task that did not stop is not named in the log"
    returned = (tmp_path / "state" / "busy-line.returned").read_text().split()
    assert float(returned[-1]) in committed_values(sub, tmp_path / "state", "busy-line")
