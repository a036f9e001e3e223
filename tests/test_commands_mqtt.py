"""Commands through the whole agent, a real mosquitto and the real Modbus charger simulator:
retained commands are refused (and cleared), a command on an empty device level is answered."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from agent.app import Agent
from agent.config import load_config_text
from tests.charger_agent import charger_config, current_writes

GW = "gw-cmd"


@pytest.fixture
async def running_agent(tmp_path, mosquitto, charger):
    """Start an agent speaking ``protocol``; stopped at the end of the test."""
    tasks: list[asyncio.Task] = []

    async def run(protocol: str) -> Agent:
        agent = Agent(load_config_text(charger_config(GW, tmp_path / "state", mosquitto, charger[0],
                                                     mqtt=f'protocol = "{protocol}"')))
        tasks.append(asyncio.create_task(agent.run()))
        return agent

    yield run
    for t in tasks:
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t


async def wait_subscribed(sub) -> None:
    def subscribed(m) -> bool:
        return m.topic == f"edge/{GW}/health" and m.json().get("uplink", {}).get("commands_subscribed") is True
    await asyncio.to_thread(sub.wait_for, 1, 60, predicate=subscribed)


async def wait_json(sub, topic: str, cid: str, timeout: float = 60) -> dict:
    got = await asyncio.to_thread(sub.wait_for, 1, timeout,
                                  predicate=lambda m: m.topic == topic and m.payload and m.json().get("id") == cid)
    return got[0].json()


async def test_retained_command_published_while_subscribed_is_refused_not_executed(
        running_agent, charger, mosquitto, mqtt_subscriber):
    _, sim = charger
    sub = mqtt_subscriber(mosquitto, f"edge/{GW}/#")
    sender = mqtt_subscriber(mosquitto, "unused/#")
    await running_agent("5")
    await wait_subscribed(sub)
    cmd_topic, result_topic = f"edge/{GW}/cmd/cp1", f"edge/{GW}/cmd/cp1/result"

    def send(cid: str, amps: float, *, retain: bool) -> None:
        body = orjson.dumps({"id": cid, "action": "set_current_limit", "value": amps})
        sender.client.publish(cmd_topic, body, qos=1, retain=retain)

    send("live-1", 10, retain=False)  # a live command is executed
    assert (await wait_json(sub, result_topic, "live-1"))["status"] == "accepted"

    send("retained-1", 16, retain=True)
    result = await wait_json(sub, result_topic, "retained-1")
    assert result["status"] == "refused" and result["code"] == "retained", result
    assert "retain" in result["reason"]
    audit = await wait_json(sub, f"edge/{GW}/audit", "retained-1")
    assert audit["status"] == "refused" and audit["code"] == "retained"
    assert current_writes(sim) == [[0, 10000]]  # the charger never saw 16 A

    # the agent deleted the retained command: a new subscriber gets nothing retained before a marker
    checker = mqtt_subscriber(mosquitto, cmd_topic)
    sender.client.publish(cmd_topic, b"", qos=1)  # an empty message: not a command, only a marker
    first = (await asyncio.to_thread(checker.wait_for, 1, 60))[0]
    assert first.payload == b"" and not first.retain


async def test_command_on_empty_device_level_is_answered_and_audited(
        running_agent, charger, mosquitto, mqtt_subscriber):
    _, sim = charger
    sub = mqtt_subscriber(mosquitto, f"edge/{GW}/#")
    sender = mqtt_subscriber(mosquitto, "unused/#")
    await running_agent("3.1.1")
    await wait_subscribed(sub)
    body = orjson.dumps({"id": "e1", "action": "set_current_limit", "value": 12})
    sender.client.publish(f"edge/{GW}/cmd/", body, qos=1)
    result = await wait_json(sub, f"edge/{GW}/cmd//result", "e1")
    assert result["status"] == "refused" and result["code"] == "unknown_device"
    assert "names no device" in result["reason"]
    audit = await wait_json(sub, f"edge/{GW}/audit", "e1")
    assert audit["status"] == "refused" and audit["device"] == ""
    assert current_writes(sim) == []
