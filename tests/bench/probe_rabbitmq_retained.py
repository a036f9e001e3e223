"""Where RabbitMQ's MQTT plugin delivers retained messages in a 3-node cluster (docs/fleet.md).

Publishes a retained ``status`` through node 1, then subscribes on each node with a wildcard filter
and with the exact topic; then checks that a last will published through node 1 reaches a live
subscriber on node 3. Prints what each subscriber received.

    python tests/bench/probe_rabbitmq_retained.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fleet_helpers import RabbitCluster  # noqa: E402


def new_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)


def received(port: int, client_id: str, topic_filter: str, seconds: float = 2.0) -> list[tuple]:
    got: list[tuple] = []
    s = new_client(client_id)
    s.on_message = lambda cl, u, m: got.append((m.topic, m.payload, m.retain))
    s.on_connect = lambda cl, u, f, r, p: cl.subscribe(topic_filter, 1)
    s.connect("127.0.0.1", port)
    s.loop_start()
    time.sleep(seconds)
    s.loop_stop()
    s.disconnect()
    return got


def main() -> None:
    t0 = time.time()
    c = RabbitCluster(3).start()
    print(f"cluster up in {time.time() - t0:.1f} s")
    try:
        pub = new_client("pub")
        pub.connect("127.0.0.1", c.mqtt_ports[0])
        pub.loop_start()
        pub.publish("edge/gw1/status", b'{"state":"online"}', qos=1, retain=True).wait_for_publish(5)
        time.sleep(1)
        for i, port in enumerate(c.mqtt_ports):
            print(f"node {i + 1}, wildcard edge/+/status: {received(port, f'w{i}', 'edge/+/status')}")
            print(f"node {i + 1}, exact edge/gw1/status: {received(port, f'e{i}', 'edge/gw1/status')}")
        live: list[tuple] = []
        s = new_client("live3")
        s.on_message = lambda cl, u, m: live.append((m.topic, m.payload, m.retain))
        s.on_connect = lambda cl, u, f, r, p: cl.subscribe("edge/+/status", 1)
        s.connect("127.0.0.1", c.mqtt_ports[2])
        s.loop_start()
        time.sleep(1)
        w = new_client("willgw")
        w.will_set("edge/gw2/status", b'{"state":"offline"}', qos=1, retain=True)
        w.connect("127.0.0.1", c.mqtt_ports[0])
        w.loop_start()
        time.sleep(1)
        w.loop_stop()
        w.socket().close()  # no DISCONNECT: the broker publishes the will
        time.sleep(3)
        s.loop_stop()
        print(f"live subscriber on node 3, will published via node 1: {live}")
    finally:
        c.close()


if __name__ == "__main__":
    main()
