"""Wait on an MQTT broker until every named device has published telemetry; print when each did.

Used by pi_check.sh on the host: the agent runs inside an emulated Pi userland and publishes to a
mosquitto on the host. Exit 0 when every device was heard from, 1 on timeout (naming the silent ones).

    python await_telemetry.py --port 1883 --gateway pi-check --timeout 600 load sdm630-1
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("devices", nargs="+")
    args = ap.parse_args()

    start = time.monotonic()
    heard: dict[str, float] = {}
    counts: dict[str, int] = {}
    done = threading.Event()
    prefix = f"edge/{args.gateway}/"

    def on_message(_c, _u, msg) -> None:
        topic = msg.topic.removeprefix(prefix)
        counts[topic.split("/")[0]] = counts.get(topic.split("/")[0], 0) + 1
        if topic.startswith("telemetry/"):
            device = topic.split("/", 1)[1]
            if device not in heard:
                heard[device] = time.monotonic() - start
                print(f"  telemetry from {device} after {heard[device]:.1f} s", flush=True)
            if all(d in heard for d in args.devices):
                done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pi-check-listener")
    client.on_message = on_message
    if args.username:
        client.username_pw_set(args.username, args.password)
    client.on_connect = lambda c, *_: c.subscribe(prefix + "#", qos=1)
    client.connect(args.host, args.port)
    client.loop_start()
    try:
        done.wait(args.timeout)
        time.sleep(2)  # a little more traffic for the message counts
    finally:
        client.loop_stop()
        client.disconnect()
    print("  messages by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), flush=True)
    silent = [d for d in args.devices if d not in heard]
    if silent:
        print(f"  no telemetry within {args.timeout:.0f} s from: {', '.join(silent)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
