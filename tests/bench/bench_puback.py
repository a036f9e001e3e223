"""CPU per QoS 1 message (publish + PUBACK) through a real mosquitto: paho's own client against the
uplink's client (which hands two-byte PUBACKs to ``on_publish`` without building a ReasonCode and
Properties for each), for MQTT 3.1.1 and 5. Rounds alternate; prints microseconds of process CPU per
message and the ratio of the two, from one run.

    python tests/bench/bench_puback.py [--messages 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for mqtt_helpers

import paho.mqtt.client as mqtt  # noqa: E402
from mqtt_helpers import Broker  # noqa: E402

from agent.config.schema import MqttConfig, MqttProtocol  # noqa: E402
from agent.uplink.connection import make_client  # noqa: E402
from agent.uplink.topics import Topics  # noqa: E402

TOPIC = "edge/bench/puback"


def cpu_per_message(client: mqtt.Client, broker: Broker, n: int) -> float:
    """Publish ``n`` QoS 1 messages in windows of 200 (paho's loop in this thread); CPU us per message."""
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.on_socket_register_write = client.on_socket_unregister_write = None
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.subscribe(TOPIC, qos=0)  # a subscriber: an MQTT 5 broker answers "Success" in two bytes
    for _ in range(20):
        client.loop(0.05)
    t0, sent = time.process_time(), 0
    while acked < n:
        while sent < n and sent - acked < 200:
            client.publish(TOPIC, b"x" * 64, qos=1)
            sent += 1
        client.loop(1.0)
    cpu = time.process_time() - t0
    client.disconnect()
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        broker = Broker(Path(d) / "broker").start()
        try:
            print(f"CPU per QoS 1 message, {a.messages} messages per run (real mosquitto), us")
            for protocol in (MqttProtocol.V311, MqttProtocol.V5):
                paho_v = mqtt.MQTTv5 if protocol == MqttProtocol.V5 else mqtt.MQTTv311
                cfg = MqttConfig(host=broker.host, port=broker.port, protocol=protocol)
                for r in range(a.rounds):
                    ours = cpu_per_message(make_client(cfg, gateway=f"b{r}", topics=Topics("edge", f"b{r}"), now_ms=0),
                                           broker, a.messages)
                    theirs = cpu_per_message(mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho{r}",
                                                         protocol=paho_v), broker, a.messages)
                    print(f"  MQTT {protocol.value:<5} round {r}: paho {theirs:6.1f}  uplink {ours:6.1f}"
                          f"  ratio {ours / theirs:.2f}", flush=True)
        finally:
            broker.kill()


if __name__ == "__main__":
    main()
