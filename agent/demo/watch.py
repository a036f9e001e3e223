"""An upstream subscriber for the demo: counts what arrives and checks ``seq`` for loss and duplicates.

It subscribes before the agent starts and talks to the broker directly (not through the gateway's
link), so it sees every message the broker accepts, outage or not.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import orjson
import paho.mqtt.client as mqtt


class UpstreamWatch:
    def __init__(self, host: str, port: int, prefix: str, gateway: str, *, events: deque[str] | None = None):
        self.base = f"{prefix}/{gateway}"
        self.lock = threading.Lock()
        self.seqs: set[int] = set()
        self.duplicates = 0
        self.readings = 0
        self.readings_by_device: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.latest: dict[str, dict[str, tuple[float | None, str, int]]] = {}
        self.events: deque[str] = deque(maxlen=20) if events is None else events
        self.status = "?"
        self.health: dict = {}
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-watch-{gateway}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.5, 2)
        self.client.connect_async(host, port, keepalive=15)

    def start(self, timeout: float = 15.0) -> None:
        """Connect and subscribe; returns once the broker has confirmed the subscription."""
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError(f"the upstream subscriber could not subscribe to {self.base}/# within {timeout:.0f} s")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        client.subscribe(f"{self.base}/#", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        parts = msg.topic[len(self.base) + 1:].split("/", 1)
        kind = parts[0]
        try:
            body = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            return
        with self.lock:
            self.messages[kind] += 1
            if kind == "status":
                self.status = body.get("state", "?")
                return
            if kind == "health":
                self.health = body
                return
            seq = body.get("seq")
            if seq is not None:
                if seq in self.seqs:
                    self.duplicates += 1
                    return
                self.seqs.add(seq)
            if kind == "telemetry":
                device = body["device"]
                latest = self.latest.setdefault(device, {})
                for r in body.get("readings", ()):
                    self.readings += 1
                    self.readings_by_device[device] += 1
                    latest[r["metric"]] = (r["value"], r["unit"], r["q"])
            elif kind in ("event", "cmd", "audit"):
                self.events.append(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in body.items()
                                                            if k not in ("v", "gateway", "seq", "ts", "context")))

    def max_seq(self) -> int:
        with self.lock:
            return max(self.seqs, default=0)

    def missing_upto(self, last_seq: int) -> int:
        """How many of the seqs 1..last_seq have not arrived."""
        with self.lock:
            return sum(1 for s in range(1, last_seq + 1) if s not in self.seqs)
