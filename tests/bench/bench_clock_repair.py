"""What the repair at the first clock sync costs: messages held before the sync (100 readings each,
as the pipeline makes them) are rewritten and released in chunks. Prints the repair rate and its
ratio to committing the same messages in the first place, both measured in this run, with the
shipped defaults (synchronous FULL, 100 messages per commit).

    python tests/bench/bench_clock_repair.py [--messages 2000] [--readings 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from agent.store import Outbox, Pending, Priority, clockhold
from agent.store.clockhold import ClockHold

BOOT = "bench-boot"
OFFSET_MS = 10_000  # booted in 1970: wall - monotonic
SYNCED_OFFSET_MS = 1_767_225_600_000


def message(i: int, readings: int) -> Pending:
    rows = [{"ts": 20_000 + i * 1000, "metric": f"m{k}", "value": 230.0 + k, "unit": "V", "q": 64}
            for k in range(readings)]
    return Pending(Priority.RAW, "edge/gw1/telemetry/meter1", {"v": 1, "device": "meter1", "readings": rows},
                   readings, ClockHold(BOOT, OFFSET_MS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--readings", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, Outbox(Path(d) / "o.db", max_bytes=1 << 30, gateway="gw1") as ob:
        t0 = time.perf_counter()
        for i in range(0, a.messages, 100):
            ob.append([message(i + k, a.readings) for k in range(min(100, a.messages - i))])
        commit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        released = clockhold.release(ob, BOOT, synced_offset_ms=SYNCED_OFFSET_MS)
        repair_s = time.perf_counter() - t0
        assert released == a.messages and len(ob.peek(a.messages)) == a.messages
    readings = a.messages * a.readings
    print(f"held messages: {a.messages} x {a.readings} readings")
    print(f"commit (held):  {a.messages / commit_s:9.0f} msgs/s  {readings / commit_s:11.0f} readings/s")
    print(f"repair+release: {a.messages / repair_s:9.0f} msgs/s  {readings / repair_s:11.0f} readings/s")
    print(f"repair time / commit time: {repair_s / commit_s:.2f}")


if __name__ == "__main__":
    main()
