"""A node reboots under the real agent: its counters start again from zero with the new boot id, and
upstream (a real mosquitto) receives those first readings unflagged, not as implausible steps back."""

from __future__ import annotations

import orjson
import pytest
from fwb_helpers import PosixNode
from fwb_proxy import LossyProxy
from test_fwb_lossy import Agent, config, node_floor, wait_until

from agent.model import Quality

pytestmark = pytest.mark.timeout(180)
IMPLAUSIBLE = int(Quality.IMPLAUSIBLE)


def readings(messages) -> list[dict]:
    bodies = {}
    for m in messages:
        if "/telemetry/" in m.topic:
            body = orjson.loads(m.payload)
            bodies.setdefault(body["seq"], body)
    return [r for body in bodies.values() for r in body["readings"]]


def test_counters_restarting_at_a_node_reboot_are_not_flagged(host_build, tmp_path, mosquitto, mqtt_subscriber):
    sub = mqtt_subscriber(mosquitto, "edge/#")
    proxy = LossyProxy(tmp_path / "ttyGW").start()
    node_bin = host_build / "fwb_node_posix"
    node = PosixNode(node_bin, tmp_path / "unused", "--device", proxy.node_path, "--interval", "100")
    agent = Agent(config(tmp_path, mosquitto, proxy.link), tmp_path / "agent.log")
    state = tmp_path / "state"
    try:
        node.start()
        agent.start()
        assert wait_until(lambda: node_floor(state)[1] > 15, 60), agent.log.read_text()[-3000:]
        node.stop()  # the node reboots: a new boot id, its "sample" counter starts again at 1
        node = PosixNode(node_bin, tmp_path / "unused", "--device", proxy.node_path, "--interval", "100").start()
        boot2 = node.boot_id
        assert wait_until(lambda: node_floor(state)[0] == boot2 and node_floor(state)[1] > 10, 60), \
            agent.log.read_text()[-3000:]

        def first_of_boot2() -> list[dict]:
            rs = readings(sub.snapshot())
            ts2 = {r["ts"] for r in rs if r["metric"] == "boot_id" and int(r["value"]) == boot2 & 0x7FFFFFFF}
            return sorted((r for r in rs if r["metric"] == "sample" and r["ts"] in ts2), key=lambda r: r["ts"])
        assert wait_until(lambda: len(first_of_boot2()) >= 5, 30)
    finally:
        agent.stop()
        node.kill()
        proxy.stop()
    first = first_of_boot2()[:5]
    assert [int(r["value"]) for r in first][0] <= 3  # the counter did start again
    assert not [r for r in first if r["q"] & IMPLAUSIBLE], first
