"""Home Assistant MQTT discovery against a real mosquitto and the real agent: every discovery
payload passes Home Assistant's rules, states arrive and render through the value templates, a dead
device goes unavailable, and a device dropped from the config disappears after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import jinja2
import orjson
import pytest

from agent.app import Agent
from agent.config import load_config_text
from agent.homeassistant.config import HomeAssistantConfig
from agent.homeassistant.discovery import announce
from agent.model import MetricKind, MetricSpec
from agent.uplink.topics import Topics
from drivers.bme680.driver import METRICS as BME680
from drivers.charger_common.model import CHARGER_METRICS
from drivers.mhz19.driver import METRICS as MHZ19
from drivers.modbus_meter.codec import load_profile, profile_names
from drivers.modbus_meter.sim import start as start_meter
from drivers.pms5003.driver import METRICS as PMS5003
from drivers.pulse_counter.driver import _DERIVED as PULSE_DERIVED
from drivers.sds011.driver import METRICS as SDS011
from tests.ha_validator import validate_discovery
from tests.mqtt_helpers import free_port

SAMPLES = Path(__file__).resolve().parents[1] / "drivers" / "replay" / "samples"
TEMPLATES = jinja2.Environment()


def builtin_metric_sets() -> dict[str, list[MetricSpec]]:
    sets = {f"modbus_meter {p}": [r.metric() for r in load_profile(p).registers] for p in profile_names()}
    sets |= {"charger": list(CHARGER_METRICS), "bme680": BME680, "mhz19": MHZ19, "pms5003": PMS5003, "sds011": SDS011}
    sets["pulse_counter"] = [m for total, rate, _ in PULSE_DERIVED.values() for m in (total, rate) if m is not None]
    return sets


def entities(metrics: list[MetricSpec]) -> dict[str, dict]:
    a = announce(HomeAssistantConfig(), Topics("edge", "gw"), "dev", "model", metrics)
    return {m: a.payload["cmps"][m] for m in a.metrics}


def test_every_builtin_metric_gets_a_discovery_payload_home_assistant_accepts() -> None:
    seen: set[str] = set()
    for i, (name, metrics) in enumerate(builtin_metric_sets().items()):
        a = announce(HomeAssistantConfig(), Topics("edge", "gw"), f"dev{i}", name, metrics)
        assert validate_discovery(a.config_topic, orjson.dumps(a.payload), seen) == [], name
    meter = entities([r.metric() for r in load_profile("sdm630").registers])
    assert {k: meter["energy_import"].get(k) for k in ("device_class", "state_class", "unit_of_measurement")} == \
        {"device_class": "energy", "state_class": "total", "unit_of_measurement": "kWh"}
    assert meter["power_total"]["device_class"] == "power" and meter["power_total"]["state_class"] == "measurement"
    assert meter["voltage_l1"]["device_class"] == "voltage" and meter["current_l1"]["device_class"] == "current"
    assert meter["frequency"]["device_class"] == "frequency" and meter["frequency"]["unit_of_measurement"] == "Hz"
    assert "device_class" not in meter["reactive_energy_import"]  # kvarh: no class Home Assistant could reject
    charger = entities(list(CHARGER_METRICS))
    assert charger["energy_total"]["state_class"] == "total"  # a lifetime total: a bad read is never a "reset"
    assert charger["session_energy"]["state_class"] == "total_increasing"  # restarts from 0 on purpose
    assert "state_class" not in charger["state"]  # a coded state has no statistics
    air = entities(BME680 + PMS5003 + MHZ19[:1])
    assert air["temperature"]["unit_of_measurement"] == "°C" and air["temperature"]["device_class"] == "temperature"
    assert air["humidity"]["device_class"] == "humidity" and air["pressure"]["device_class"] == "pressure"
    assert air["co2"]["device_class"] == "carbon_dioxide"
    assert [air[m]["device_class"] for m in ("pm1_0", "pm2_5", "pm10")] == ["pm1", "pm25", "pm10"]
    assert air["pm2_5"]["unit_of_measurement"] == "µg/m³"
    assert "device_class" not in air["gas_resistance"] and "device_class" not in air["gt0_3um"]
    odd = entities([MetricSpec("mystery", "furlong/fortnight"), MetricSpec("pulses", "", MetricKind.COUNTER)])
    assert "device_class" not in odd["mystery"] and odd["pulses"]["state_class"] == "total"


def render(template: str, state: dict) -> str:
    return TEMPLATES.from_string(template).render(value_json=state)


def config_text(tmp: Path, broker, meter_port: int, *, with_meter: bool = True) -> str:
    text = f'''
[gateway]
id = "gw-ha"
state_dir = "{tmp / 'state'}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
[store]
commit_interval = 0.1
[homeassistant]
[lines.bus]
type = "modbus_tcp"
host = "127.0.0.1"
port = {meter_port}
timeout = 10
unit_backoff_max = 0.5
reconnect_max = 0.5
[[devices]]
name = "load"
type = "replay"
file = "{SAMPLES / 'building_load_kw.csv'}"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 0.2
'''
    if with_meter:
        text += '''
[[devices]]
name = "main.meter"
type = "modbus_meter"
line = "bus"
profile = "sdm630"
poll_interval = 0.2
timeout = 30
backoff_max = 0.5
'''
    return text


METER_CONFIG = "homeassistant/device/gw-ha/main_meter/config"
LOAD_CONFIG = "homeassistant/device/gw-ha/load/config"


async def wait(sub, predicate, timeout: float = 30) -> list:
    return await asyncio.to_thread(sub.wait_for, 1, timeout, predicate=predicate)


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_discovery_states_availability_and_removal(tmp_path, mosquitto, mqtt_subscriber) -> None:
    port = free_port()
    sim = await start_meter(profile="sdm630", tcp=f"127.0.0.1:{port}", update_interval=None)
    sub = mqtt_subscriber(mosquitto, "homeassistant/#", "edge/gw-ha/ha/#", "edge/gw-ha/status")
    agent = Agent(load_config_text(config_text(tmp_path, mosquitto, port)))
    task = asyncio.create_task(agent.run())
    try:
        # discovery: one retained message per device, every payload valid for Home Assistant
        found = await asyncio.to_thread(sub.wait_for, 2, 60, predicate=lambda m: m.topic.endswith("/config"))
        seen: set[str] = set()
        assert {m.topic for m in found} == {METER_CONFIG, LOAD_CONFIG}
        for m in found:
            assert validate_discovery(m.topic, m.payload, seen) == [], m.topic
        meter = next(m.json() for m in found if m.topic == METER_CONFIG)
        assert meter["dev"]["name"] == "main.meter" and meter["o"]["name"] == "edge-agent"
        assert meter["cmps"]["energy_import"]["state_class"] == "total"
        # availability: the gateway's own status (LWT) and the device's poller state must both be online
        assert meter["avty_mode"] == "all"
        gateway_avty, device_avty = meter["avty"]
        status = await wait(sub, lambda m: m.topic == gateway_avty["t"])
        assert render(gateway_avty["val_tpl"], status[-1].json()) == "online"
        assert device_avty["t"] == "edge/gw-ha/ha/main.meter/availability"
        # states arrive on the per-device topic and every entity's template renders a number
        state_msgs = await wait(sub, lambda m: m.topic == "edge/gw-ha/ha/main.meter/state")
        state = state_msgs[-1].json()
        for cid, comp in meter["cmps"].items():
            assert float(render(comp["value_template"], state)) == pytest.approx(sim.values[cid], rel=1e-3), cid
        load = await wait(sub, lambda m: m.topic == "edge/gw-ha/ha/load/state")
        assert load[-1].json()["power"] > 0 and not load[-1].retain
        await wait(sub, lambda m: m.topic == "edge/gw-ha/ha/main.meter/availability" and m.payload == b"online")
        assert not any(m.topic.endswith("/availability") and m.payload == b"offline" for m in sub.snapshot())
        # the meter dies: its entities go unavailable (retained), the other device stays online
        await sim.stop()
        await wait(sub, lambda m: m.topic == "edge/gw-ha/ha/main.meter/availability" and m.payload == b"offline")
        watcher = mqtt_subscriber(mosquitto, "edge/gw-ha/ha/+/availability")
        retained = await asyncio.to_thread(watcher.wait_for, 2, 60)
        assert {(m.topic, m.payload, m.retain) for m in retained} == {
            ("edge/gw-ha/ha/main.meter/availability", b"offline", True), ("edge/gw-ha/ha/load/availability", b"online", True)}
    finally:
        await stop(task)
        await sim.stop()

    # the meter leaves the config: after a restart its entities are removed (empty retained config)
    agent = Agent(load_config_text(config_text(tmp_path, mosquitto, port, with_meter=False)))
    task = asyncio.create_task(agent.run())
    try:
        await wait(sub, lambda m: m.topic == METER_CONFIG and m.payload == b"")
        await wait(sub, lambda m: m.topic == "edge/gw-ha/ha/main.meter/availability" and m.payload == b"")
    finally:
        await stop(task)
    # a fresh subscriber (Home Assistant restarting) sees only the configured device's retained config
    late = mqtt_subscriber(mosquitto, "homeassistant/#")
    retained = await asyncio.to_thread(late.wait_for, 1, 60)
    await asyncio.sleep(0.5)
    assert {m.topic for m in late.snapshot() if m.retain} == {LOAD_CONFIG} and retained


def test_a_bad_counter_read_never_reaches_home_assistant(tmp_path) -> None:
    """A read of 0 from a lifetime energy counter is flagged by processing and left out of the state,
    so the entity keeps its last value (an empty template result is ignored by Home Assistant)."""
    from agent.model import Batch, Sample

    unused_broker = SimpleNamespace(host="127.0.0.1", port=free_port())  # nothing connects in this test
    cfg = load_config_text(config_text(tmp_path, unused_broker, free_port()))
    agent = Agent(cfg)
    try:
        bridge = agent.homeassistant
        poller = next(p for p in agent.pollers if p.name == "main.meter")
        meter = announce(HomeAssistantConfig(), Topics("edge", "gw-ha"), "main.meter", "m", agent.drivers["main.meter"].metrics())
        template = meter.payload["cmps"]["energy_import"]["value_template"]
        now = agent.clock.now_ms()
        for i, kwh in enumerate((1234.5, 1234.51, 0.0)):  # 0.01 kWh in 1 s: within an SDM630's 69 kW
            batch = Batch.from_samples([Sample("energy_import", kwh), Sample("power_total", 500.0 + i)],
                                       poller.metric_index, now + 1000 * i)
            agent.pipeline.submit("main.meter", batch)
            agent.pipeline.cycle()
            _, state = bridge.state_body("main.meter")
            if kwh:
                assert render(template, state) == str(kwh)
        assert "energy_import" not in state and render(template, state) == ""
        assert state["power_total"] == 502.0  # the rest of the poll still goes out
    finally:
        agent.outbox.close()


async def test_discovery_comes_back_after_a_broker_restart_that_lost_retained_messages(
        tmp_path, mosquitto, mqtt_subscriber) -> None:
    text = config_text(tmp_path, mosquitto, free_port(), with_meter=False).replace(
        "[store]", "reconnect_min = 0.1\nreconnect_max = 0.5\n[store]")
    sub = mqtt_subscriber(mosquitto, "homeassistant/#", "edge/gw-ha/ha/load/availability")
    agent = Agent(load_config_text(text))
    task = asyncio.create_task(agent.run())
    try:
        await wait(sub, lambda m: m.topic == LOAD_CONFIG)
        await wait(sub, lambda m: m.topic.endswith("/availability") and m.payload == b"online")
        mosquitto.stop()  # no persistence: every retained message is gone
        mosquitto.start()
        late = mqtt_subscriber(mosquitto, "homeassistant/#", "edge/gw-ha/ha/load/availability")
        await wait(late, lambda m: m.topic == LOAD_CONFIG and validate_discovery(m.topic, m.payload, set()) == [])
        await wait(late, lambda m: m.topic.endswith("/availability") and m.payload == b"online")
    finally:
        await stop(task)


def test_a_pulse_water_meter_is_announced_as_water_and_a_gas_meter_as_gas() -> None:
    """Home Assistant's Energy dashboard takes a water meter only with device_class water (never volume)."""
    from drivers.pulse_counter.driver import Quantity

    water = entities([m for m in PULSE_DERIVED[Quantity.VOLUME][:2]])
    assert {k: water["volume"].get(k) for k in ("device_class", "state_class", "unit_of_measurement")} == \
        {"device_class": "water", "state_class": "total", "unit_of_measurement": "m³"}
    assert water["flow"]["device_class"] == "volume_flow_rate"
    gas = entities([m for m in PULSE_DERIVED[Quantity.GAS][:2]])
    assert gas["gas_volume"]["device_class"] == "gas" and gas["gas_volume"]["state_class"] == "total"
