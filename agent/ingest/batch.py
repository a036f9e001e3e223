"""What both consumers share: turning deliveries into a writer batch, and the stats line."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from agent.ingest.parse import Message, Rejected, Status, parse
from agent.ingest.writer import Writer

log = logging.getLogger("edge_agent.ingest")


def split(deliveries: Iterable[tuple[str, bytes]], prefix: str) -> tuple[list[Message], list[Status],
                                                                          list[tuple[str, str, bytes]]]:
    """(topic, payload) pairs -> data messages, status/health, and rejected (topic, reason, payload)."""
    msgs: list[Message] = []
    statuses: list[Status] = []
    rejected: list[tuple[str, str, bytes]] = []
    for topic, payload in deliveries:
        try:
            rec = parse(topic, payload, prefix=prefix)
        except Rejected as e:
            rejected.append((topic, str(e), payload))
            continue
        if isinstance(rec, Message):
            msgs.append(rec)
        elif isinstance(rec, Status):
            statuses.append(rec)
    return msgs, statuses, rejected


class StatsReporter:
    """Writes the writer's counters as one JSON object to a file (atomically) and to the log, at most
    every ``interval`` seconds: the consumer's own metrics."""

    def __init__(self, writer: Writer, path: Path | None, interval: float, extra: dict[str, Any]):
        self.writer, self.path, self.interval, self.extra = writer, path, interval, extra
        self._last = 0.0
        self.cpu0 = time.process_time()
        self._lock = threading.Lock()  # the MQTT lane reports from paho's thread too

    def maybe(self, *, force: bool = False) -> None:
        with self._lock:
            self._report(force)

    def _report(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        doc = {**self.extra, **self.writer.stats.snapshot(), "cpu_s": round(time.process_time() - self.cpu0, 3),
               "pid": os.getpid(), "ts": time.time()}
        line = orjson.dumps(doc)
        log.info("ingest stats %s", line.decode())
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(line)
            os.replace(tmp, self.path)
