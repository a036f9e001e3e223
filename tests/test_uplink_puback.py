"""The uplink's paho client reports every PUBACK of a real broker exactly as paho's own client does.

The uplink's client hands a two-byte PUBACK (MQTT 3.1.1, and MQTT 5's success without properties) to
``on_publish`` with shared "Success" and empty-properties objects instead of paho building new ones; this
compares what ``on_publish`` receives, and what ``publish()``'s info says, with paho's own client, so a
paho release that changes its internals fails here rather than leaving rows unacknowledged.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from agent.config.schema import MqttConfig, MqttProtocol
from agent.uplink.connection import _PUBACK_ACCEPTED, make_client
from agent.uplink.topics import Topics

N = 50


def _acks(client: mqtt.Client, subscribe: bool = True) -> tuple[list[tuple], list[bool]]:
    """Publish N QoS 1 messages; what on_publish got for each, and whether each info says published."""
    got: list[tuple] = []
    done = threading.Event()

    def on_publish(_c, _u, mid, reason, props):
        shared = any(reason is r for r in _PUBACK_ACCEPTED.values())
        got.append((mid, reason.is_failure, str(reason), reason.value, props.json(), shared))
        if len(got) == N:
            done.set()

    subscribed = threading.Event()
    client.on_publish = on_publish
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_socket_register_write = client.on_socket_unregister_write = None  # paho's own threaded loop
    client.loop_start()
    try:
        # a subscriber, so an MQTT 5 broker answers "Success" (else "No matching subscribers", 3 bytes)
        if subscribe:
            client.subscribe("edge/test/puback", qos=0)
            assert subscribed.wait(60)
        infos = [client.publish("edge/test/puback", b"x" * 10, qos=1) for _ in range(N)]
        assert done.wait(60), f"{len(got)} of {N} PUBACKs reported"
        published = [info.is_published() for info in infos]
        client.disconnect()
    finally:
        client.loop_stop()
    return sorted(got), published


@pytest.mark.parametrize("protocol", [MqttProtocol.V311, MqttProtocol.V5])
def test_pubacks_reach_on_publish_as_paho_reports_them(mosquitto, protocol) -> None:
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=protocol)
    ours = make_client(cfg, gateway="gw1", topics=Topics("edge", "gw1"), now_ms=0)
    v5 = protocol == MqttProtocol.V5
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-reference",
                       protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    results = []
    for client in (ours, paho):
        client.connect(mosquitto.host, mosquitto.port)
        results.append(_acks(client))
    (ours_got, ours_published), (paho_got, paho_published) = results
    assert len(ours_got) == N and {mid for mid, *_ in ours_got} == {mid for mid, *_ in paho_got}
    assert [g[1:5] for g in ours_got] == [g[1:5] for g in paho_got] == [(False, "Success", 0, {})] * N
    # ours took the shortcut for every PUBACK (a renamed paho internal would leave it unused, unnoticed)
    assert [g[5] for g in ours_got] == [True] * N and [g[5] for g in paho_got] == [False] * N
    assert ours_published == paho_published == [True] * N


def test_mqtt5_no_matching_subscribers_reaches_on_publish_as_paho_reports_it(mosquitto) -> None:
    """With nobody subscribed an MQTT 5 broker accepts with "No matching subscribers" (a reason code
    byte): reported as paho reports it, through the shortcut too."""
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=MqttProtocol.V5)
    ours = make_client(cfg, gateway="gw2", topics=Topics("edge", "gw2"), now_ms=0)
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-reference-2", protocol=mqtt.MQTTv5)
    results = []
    for client in (ours, paho):
        client.connect(mosquitto.host, mosquitto.port)
        results.append(_acks(client, subscribe=False))
    (ours_got, ours_published), (paho_got, paho_published) = results
    expected = [(False, "No matching subscribers", 0x10, {})] * N
    assert [g[1:5] for g in ours_got] == [g[1:5] for g in paho_got] == expected
    assert [g[5] for g in ours_got] == [True] * N and [g[5] for g in paho_got] == [False] * N
    assert ours_published == paho_published == [True] * N
