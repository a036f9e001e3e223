"""An upstream subscriber for the demo: counts what arrives and checks seq for loss and duplicates."""

from __future__ import annotations

import threading
from collections import Counter, deque

import orjson
import paho.mqtt.client as mqtt


class UpstreamWatch:
    def __init__(self, host: str, port: int, prefix: str, gateway: str):
        self.base = f"{prefix}/{gateway}"
        self.lock = threading.Lock()
        self.seqs: set[int] = set()
        self.duplicates = 0
        self.readings = 0
        self.messages = Counter()
        self.latest: dict[tuple[str, str], tuple[float | None, str, int]] = {}
        self.events: deque[str] = deque(maxlen=6)
        self.status = "?"
        self.health: dict = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-watch-{gateway}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.5, 2)
        self.client.connect_async(host, port, keepalive=15)

    def start(self) -> None:
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        client.subscribe(f"{self.base}/#", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        kind = msg.topic[len(self.base) + 1:].split("/", 1)[0]
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
                for r in body.get("readings", ()):
                    self.readings += 1
                    self.latest[(body["device"], r["metric"])] = (r["value"], r["unit"], r["q"])
            elif kind in ("event", "cmd", "audit"):
                self.events.append(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in body.items()
                                                            if k not in ("v", "gateway", "seq", "context"))[:110])

    def missing_seqs(self) -> int:
        """Gaps in the seq numbers received so far (0 means nothing lost)."""
        with self.lock:
            if not self.seqs:
                return 0
            return (max(self.seqs) - min(self.seqs) + 1) - len(self.seqs)
