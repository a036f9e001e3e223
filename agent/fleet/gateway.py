"""One simulated gateway: a meter producing readings into a real SQLite outbox, forwarded by the real
uplink. Optional injected resends publish an already stored message a second time (what a gateway
does when a PUBACK is lost), so the upstream sees true duplicates: same (gateway, stream, seq), same
bytes."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import orjson

from agent.config.schema import MqttConfig
from agent.store.outbox import Outbox
from agent.store.rows import Pending, Priority, Synchronous
from agent.uplink.mqtt import Uplink
from agent.uplink.topics import Topics

OUTBOX_BYTES = 16 * 1024 * 1024


@dataclass
class GatewayReport:
    gateway: str
    stream: str
    first_seq: int | None
    last_seq: int
    messages: int
    readings: int
    resends: int
    depth: int  # messages still in the outbox at the end (0 when everything was acknowledged)
    connects: int


class SimGateway:
    def __init__(self, gateway: str, state_dir: Path, cfg: MqttConfig, *, readings: int, interval: float,
                 resend: float, energy_every: int, rnd: random.Random):
        self.gateway = gateway
        # NORMAL: hundreds of simulated outboxes share one disk here; a real gateway keeps FULL
        self.outbox = Outbox(state_dir / gateway / "outbox.db", max_bytes=OUTBOX_BYTES, gateway=gateway,
                             synchronous=Synchronous.NORMAL)
        self.uplink = Uplink(cfg, gateway, self.outbox)
        self.topics = Topics(cfg.topic_prefix, gateway)
        self.readings, self.interval, self.resend, self.energy_every = readings, interval, resend, energy_every
        self.rnd = rnd
        self.recent: deque[tuple[str, bytes]] = deque(maxlen=16)
        self.stream = ""
        self.first_seq: int | None = None
        self.messages = self.readings_sent = self.resends = 0
        self._kwh = rnd.uniform(100, 5000)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.uplink.run())

    def _append(self, pending: list[Pending]) -> None:
        seqs = self.outbox.append(pending)
        if self.first_seq is None and seqs:
            self.first_seq = seqs[0]
        for p in pending:
            self.stream = str(p.body.get("stream", ""))  # the outbox's identity, when it sets one
            self.recent.append((p.topic, orjson.dumps(p.body)))
            self.messages += 1
            self.readings_sent += p.readings
        self.uplink.wake()

    def tick(self, n: int) -> None:
        """One polling cycle: a telemetry message; every ``energy_every`` cycles an energy aggregate."""
        now = time.time_ns() // 1_000_000
        power = self.rnd.uniform(200, 6000)
        self._kwh += power * self.interval / 3.6e6
        rows = [{"ts": now, "metric": "energy_import", "value": round(self._kwh, 4), "unit": "kWh", "q": 0},
                {"ts": now, "metric": "power_total", "value": round(power, 1), "unit": "W", "q": 0}]
        rows += [{"ts": now, "metric": f"v{k}", "value": round(self.rnd.gauss(230, 2), 2), "unit": "V", "q": 0}
                 for k in range(max(0, self.readings - 2))]
        rows = rows[: self.readings]
        pending = [Pending(Priority.RAW, self.topics.telemetry("meter1"),
                           {"v": 1, "device": "meter1", "readings": rows}, len(rows))]
        if self.energy_every and n % self.energy_every == self.energy_every - 1:
            window = int(self.energy_every * self.interval * 1000)
            pending.append(Pending(Priority.AGG, self.topics.agg("meter1"), {
                "v": 1, "device": "meter1", "kind": "energy", "window": f"{window // 1000}s",
                "start": now - window, "end": now, "method": "counter",
                "kwh": round(self.rnd.uniform(0.1, 2.0), 4), "readings": self.energy_every}))
        self._append(pending)
        if self.resend and self.recent and self.rnd.random() < self.resend:
            topic, payload = self.rnd.choice(self.recent)
            if self.uplink.publish_raw(topic, payload, qos=1):
                self.resends += 1

    async def stop(self) -> GatewayReport:
        await self.uplink.stop(timeout=5.0)
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
        st = self.outbox.stats()
        self.outbox.close()
        return GatewayReport(self.gateway, self.stream, self.first_seq, st.last_seq, self.messages,
                             self.readings_sent, self.resends, st.depth, self.uplink.connects)
