"""A backlog drain after an outage, counted rather than timed: each row is read from the outbox once
and the outbox is read in batches (not once per PUBACK), and deleting the sent rows writes a small
fraction of them to the write-ahead log (SD card wear, and the WAL budget of the disk cap).
Throughput itself is measured by tests/bench/bench_drain.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_uplink import GW, Running, config, seqs_of, telemetry, until

from agent.config.schema import MqttConfig
from agent.store import Outbox, Pending, Priority

BACKLOG = 4000  # rows; a read per ~50 of them, and at the tail at most one per PUBACK burst


class CountedReads:
    """Calls to the outbox's ``peek`` and the rows they returned."""

    def __init__(self, outbox: Outbox):
        self.calls = self.rows = 0
        self._peek = outbox.peek
        outbox.peek = self.peek  # type: ignore[method-assign]

    def peek(self, *a: Any, **kw: Any) -> list:
        rows = self._peek(*a, **kw)
        self.calls += 1
        self.rows += len(rows)
        return rows


async def test_a_backlog_is_read_once_and_in_batches(mosquitto, mqtt_subscriber, tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway=GW) as outbox:
        for i in range(0, BACKLOG, 500):
            outbox.append([telemetry(i + k) for k in range(500)])
        reads = CountedReads(outbox)
        sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
        cfg = config(mosquitto)
        assert cfg.max_inflight == MqttConfig.model_fields["max_inflight"].default  # the shipped window
        async with Running(cfg, outbox) as up:
            msgs = await asyncio.to_thread(sub.wait_for, BACKLOG, 60)
            await until(lambda: outbox.stats().depth == 0, 60, what="backlog drained")
            connects, errors = up.stats().connects, up.stats().publish_errors
        assert seqs_of(msgs) == list(range(1, BACKLOG + 1))
        assert outbox.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0, "sent rows are deleted"
    assert connects == 1, "the connection dropped: rows are then read again by design"
    # linear in the backlog: no row (in flight or acknowledged) is read twice; only a row whose
    # publish() failed (paho's queue momentarily full) is read again for its retry
    assert BACKLOG <= reads.rows <= BACKLOG + errors
    # the window is refilled in batches: one read per PUBACK was the drain's top cost
    assert reads.calls <= BACKLOG // 10, f"{reads.calls} outbox reads for {BACKLOG} messages"


def test_deleting_sent_rows_writes_little_to_the_wal(tmp_path: Path) -> None:
    body = {"v": 1, "device": "meter1",
            "readings": [{"ts": 1_700_000_000_000 + k, "metric": f"m{k}", "value": 230.0 + k, "unit": "V", "q": 0}
                         for k in range(100)]}  # a telemetry message of 100 readings, ~8 KB
    with Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway=GW) as outbox:
        outbox.append([Pending(Priority.RAW, "edge/gw1/telemetry/meter1", dict(body), 100) for _ in range(400)])
        rows = outbox.peek(1000)
        sent = sum(len(r.payload) for r in rows)
        conn = outbox.db.conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        outbox.mark_acked(r.rowid for r in rows)
        assert outbox.delete() == 400
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        written = frames * outbox.page_size
    assert written < sent / 10, f"deleting {sent} bytes of sent rows wrote {written} bytes to the WAL"
