"""The assembled agent in-process against a real mosquitto: birth/LWT status, telemetry, health,
commands answered, and the technician commands (read, status, buffer, drivers)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from agent.app import Agent
from agent.config import load_config_text
from agent.store.outbox import Pending, Priority

SAMPLES = Path(__file__).resolve().parents[1] / "drivers" / "replay" / "samples"


def config_text(tmp: Path, broker) -> str:
    return f'''
[gateway]
id = "gw-app"
state_dir = "{tmp / 'state'}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
[health]
interval = 1
[[devices]]
name = "load"
type = "replay"
file = "{SAMPLES / 'building_load_kw.csv'}"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 0.2
'''


async def test_agent_publishes_status_telemetry_health_and_answers_commands(tmp_path, mosquitto, mqtt_subscriber):
    sub = mqtt_subscriber(mosquitto, "edge/gw-app/#")
    agent = Agent(load_config_text(config_text(tmp_path, mosquitto)))
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.topic == "edge/gw-app/health")
        status = await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.topic == "edge/gw-app/status")
        assert status[0].json()["state"] == "online"
        tele = await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: "/telemetry/load" in m.topic)
        body = tele[0].json()
        assert body["gateway"] == "gw-app" and body["device"] == "load" and body["seq"] >= 1
        assert body["readings"][0]["metric"] == "power" and body["readings"][0]["unit"] == "kW"
        # a command for a device that does not exist is refused with a reason, on the result topic
        pub = mqtt_subscriber(mosquitto, "unused/#")
        pub.client.publish("edge/gw-app/cmd/nonexistent", orjson.dumps({"id": "c1", "action": "stop"}), qos=1)
        res = await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.topic.endswith("/cmd/nonexistent/result"))
        answer = res[0].json()
        assert answer["status"] == "refused" and "nonexistent" in answer["reason"]
        # health reports the device up once it has been polled (the first report may come before that)
        up = await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.topic == "edge/gw-app/health"
                                     and m.json()["devices"]["load"]["up"] is True)
        assert "buffer" in up[0].json()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # graceful stop publishes the retained offline status
    offline = await asyncio.to_thread(sub.wait_for, 1, 60,
                                      predicate=lambda m: m.topic == "edge/gw-app/status" and m.json()["state"] == "offline")
    assert offline


async def test_health_counts_a_delivered_row_as_sent_before_the_next_commit_deletes_it(tmp_path, mosquitto,
                                                                                        mqtt_subscriber):
    """A PUBACK waits for the pipeline's next cycle to be handled (it does not wake the loop on its own):
    a health report made meanwhile counts the row it acknowledges as delivered, not as waiting."""
    sub = mqtt_subscriber(mosquitto, "edge/gw-app/event")
    text = config_text(tmp_path, mosquitto).replace("interval = 1", "interval = 600").replace(
        "poll_interval = 0.2", "poll_interval = 600")
    agent = Agent(load_config_text(text))
    task = asyncio.create_task(agent.run())
    try:
        for _ in range(6000):
            if agent.uplink is not None and agent.uplink.connected and agent.pipeline.before_cycle is not None:
                break
            await asyncio.sleep(0.01)
        agent.pipeline.before_cycle = lambda: None  # no next cycle takes the PUBACK: it waits
        agent.pipeline.submit_message(Pending(Priority.EVENT, "edge/gw-app/event", {"kind": "test"}))
        await asyncio.to_thread(sub.wait_for, 1, 60)
        waiting = agent.uplink._acks_in._items
        for _ in range(6000):
            if waiting:
                break
            await asyncio.sleep(0.01)
        report = agent.health()
        assert report.uplink.acked >= 1 and report.uplink.inflight == 0
        assert report.buffer.depth == 0 and report.buffer.oldest_unsent_age_s == 0.0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True, timeout=timeout)


def test_technician_commands(tmp_path: Path, mosquitto) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(config_text(tmp_path, mosquitto))
    r = cli("read", "--config", str(cfg), "load", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["readings"][0]["metric"] == "power" and out["readings"][0]["value"] > 0
    r = cli("read", "--config", str(cfg), "nosuch")
    assert r.returncode == 2 and "no device 'nosuch'" in r.stderr
    r = cli("status", "--config", str(cfg))
    assert r.returncode == 1 and "is the agent running" in r.stderr
    r = cli("buffer", "stats", "--config", str(cfg), "--json")  # read-only: creates no outbox
    assert r.returncode == 1 and "no outbox at" in r.stderr and not (tmp_path / "state" / "outbox.db").exists()
    r = cli("drivers")
    for t in ("replay", "modbus_meter", "pms5003", "sds011", "mhz19", "bme680", "pulse_counter", "modbus_charger", "ocpp_charger"):
        assert t in r.stdout
    assert "sdm630" in r.stdout  # simulators listed too
    r = cli("drivers", "--schema", "replay")
    assert json.loads(r.stdout)["properties"]["speed"]["minimum"] == 0
