"""A gateway with a list of broker nodes (``mqtt.hosts``): when its node dies it continues on the
next one without losing or reordering anything, over MQTT 3.1.1 as a RabbitMQ 3.10 cluster speaks it."""

from __future__ import annotations

import asyncio

import pytest

from agent.config.schema import MqttConfig, MqttProtocol
from tests.test_uplink import Running, assert_complete_in_order, outbox, telemetry, until  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def cluster_config(*brokers, **kw) -> MqttConfig:
    return MqttConfig(hosts=[f"{b.host}:{b.port}" for b in brokers], protocol=MqttProtocol.V311,
                      reconnect_min=0.05, reconnect_max=0.5, max_inflight=20, **kw)


async def test_a_dead_node_fails_over_to_the_next_in_order_and_back(mosquitto_factory, mqtt_subscriber,
                                                                    outbox) -> None:  # noqa: F811
    # persistent brokers and subscribers: what a node acknowledged before it stopped reaches the
    # subscriber when the node is back (a quorum queue gives the same on a RabbitMQ cluster)
    a, b = mosquitto_factory(persistence=True), mosquitto_factory(persistence=True)
    sub_a = mqtt_subscriber(a, "edge/gw1/telemetry/#", persistent=True)
    sub_b = mqtt_subscriber(b, "edge/gw1/telemetry/#", persistent=True)

    def seqs() -> set[int]:
        return {m.json()["seq"] for m in sub_a.snapshot() + sub_b.snapshot()}

    async with Running(cluster_config(a, b), outbox) as up:
        outbox.append([telemetry(i) for i in range(200)])
        up.wake()
        await asyncio.to_thread(sub_a.wait_for, 50, 60)
        a.stop()  # mid-stream: some rows are in flight, unacknowledged
        outbox.append([telemetry(i) for i in range(200, 400)])
        up.wake()
        await until(lambda: outbox.stats().depth == 0, 60, "outbox drained through the second node")
        a.start()
        await until(lambda: set(range(1, 401)) <= seqs(), 60, "both nodes delivered 1..400")
        b.stop()
        outbox.append([telemetry(i) for i in range(400, 450)])
        up.wake()
        await until(lambda: outbox.stats().depth == 0, 60, "outbox drained through the first node again")
        await until(lambda: set(range(1, 451)) <= seqs(), 60, "the first node delivered 401..450")
        assert up.stats().connects >= 3
    got_a, got_b = sub_a.snapshot(), sub_b.snapshot()
    assert got_b
    # the first node got the start and the end, the second the middle: in that order, all of them
    first_run = [m for m in got_a if m.json()["seq"] <= 400]
    last_run = [m for m in got_a if m.json()["seq"] > 400]
    assert_complete_in_order(first_run + got_b + last_run, 450)


async def test_an_unreachable_first_node_is_passed_over(mosquitto_factory, mqtt_subscriber,
                                                        outbox) -> None:  # noqa: F811
    b = mosquitto_factory()
    sub_b = mqtt_subscriber(b, "edge/gw1/telemetry/#")
    dead = mosquitto_factory(start=False)  # a port nobody listens on
    async with Running(cluster_config(dead, b), outbox) as up:
        outbox.append([telemetry(i) for i in range(20)])
        up.wake()
        msgs = await asyncio.to_thread(sub_b.wait_for, 20, 60)
        assert up.stats().connect_failures >= 1
    assert_complete_in_order(msgs, 20)


def test_hosts_entries_are_checked_and_exclusive_with_host() -> None:
    cfg = MqttConfig(hosts=["10.0.0.1:1884", "broker-b", "[::1]:1885"], port=1886)
    assert cfg.endpoints == [("10.0.0.1", 1884), ("broker-b", 1886), ("::1", 1885)]
    assert (cfg.host, cfg.port) == ("10.0.0.1", 1884)
    with pytest.raises(ValueError, match="not both"):
        MqttConfig(host="a", hosts=["b"])
    with pytest.raises(ValueError, match="'b:x'"):
        MqttConfig(hosts=["a", "b:x"])
