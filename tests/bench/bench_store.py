"""Outbox throughput: append at 1, 10 and 100 messages per transaction (synchronous FULL and NORMAL),
and the uplink's pop pattern (peek oldest N, delete them). Prints rates and ratios from one run.

    python tests/bench/bench_store.py [--seconds 1.5] [--readings 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agent.store import Outbox, Pending, Priority, Synchronous


def message(i: int, readings: int) -> Pending:
    rows = [{"ts": 1_700_000_000_000 + i, "metric": f"m{k}", "value": 230.0 + k, "unit": "V", "q": 0}
            for k in range(readings)]
    return Pending(Priority.RAW, "edge/gw1/telemetry/meter1", {"v": 1, "device": "meter1", "readings": rows})


def bench_append(d: Path, sync: Synchronous, per_tx: int, seconds: float, readings: int) -> float:
    p = d / f"append-{sync}-{per_tx}.db"
    with Outbox(p, max_bytes=1 << 30, gateway="gw1", synchronous=sync) as ob:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ob.append([message(n + k, readings) for k in range(per_tx)])
            n += per_tx
        return n / (time.perf_counter() - t0)


def bench_pop(d: Path, sync: Synchronous, batch: int, total: int, readings: int) -> float:
    p = d / f"pop-{sync}-{batch}.db"
    with Outbox(p, max_bytes=1 << 30, gateway="gw1", synchronous=sync) as ob:
        for i in range(0, total, 500):
            ob.append([message(i + k, readings) for k in range(500)])
        n, t0 = 0, time.perf_counter()
        while rows := ob.peek(batch):
            ob.delete(r.rowid for r in rows)
            n += len(rows)
        return n / (time.perf_counter() - t0)


def insert_paths(d: Path, per_tx: int, seconds: float) -> tuple[float, float]:
    """Rows/s of the bare insert: sqlite-utils insert_all in atomic() vs plain executemany (NORMAL)."""
    import sqlite3

    import sqlite_utils

    out = []
    for kind in ("sqlite-utils", "executemany"):
        db = sqlite_utils.Database(sqlite3.connect(d / f"ins-{kind}.db"))
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (rowid INTEGER PRIMARY KEY AUTOINCREMENT, seq INT, topic TEXT, payload BLOB,"
                   " priority INT, created_ms INT)")
        payload = b"x" * 700
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            rows = [(n + k, "edge/gw1/telemetry/m", payload, 0, 0) for k in range(per_tx)]
            if kind == "executemany":
                with db.atomic():
                    db.conn.executemany("INSERT INTO t (seq, topic, payload, priority, created_ms)"
                                        " VALUES (?, ?, ?, ?, ?)", rows)
            else:
                with db.atomic():
                    db["t"].insert_all(({"seq": r[0], "topic": r[1], "payload": r[2], "priority": r[3],
                                         "created_ms": r[4]} for r in rows), batch_size=per_tx)
            n += per_tx
        out.append(n / (time.perf_counter() - t0))
        db.close()
    return out[0], out[1]


def encode_only(per_tx: int, seconds: float, readings: int) -> float:
    import orjson
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for k in range(per_tx):
            orjson.dumps(message(n + k, readings).body)
        n += per_tx
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--readings", type=int, default=10, help="readings per message")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        d = Path(tmp)
        print(f"outbox append, {a.readings} readings per message, median of {a.repeat} runs of {a.seconds}s")
        print(f"{'sync':<7}{'msgs/tx':>8}{'msgs/s':>12}{'readings/s':>13}{'vs 1/tx':>9}")
        results: dict[tuple[Synchronous, int], float] = {}
        for sync in (Synchronous.FULL, Synchronous.NORMAL):
            for per_tx in (1, 10, 100):
                r = statistics.median(bench_append(d, sync, per_tx, a.seconds, a.readings) for _ in range(a.repeat))
                results[(sync, per_tx)] = r
                print(f"{sync.value:<7}{per_tx:>8}{r:>12,.0f}{r * a.readings:>13,.0f}"
                      f"{r / results[(sync, 1)]:>8.1f}x")
        print(f"encoding alone (orjson, message building): {encode_only(100, a.seconds, a.readings):,.0f} msgs/s")
        for per_tx in (1, 10, 100):
            print(f"FULL/NORMAL at {per_tx:>3}/tx: {results[(Synchronous.FULL, per_tx)] / results[(Synchronous.NORMAL, per_tx)]:.2f}")
        su, em = insert_paths(d, 100, a.seconds)
        print(f"bare insert, 100 rows/tx: sqlite-utils insert_all {su:,.0f} rows/s, executemany {em:,.0f} rows/s"
              f" ({em / su:.1f}x)")
        print("pop (peek oldest N + delete them), 20,000 messages")
        for sync in (Synchronous.FULL, Synchronous.NORMAL):
            for batch in (1, 100, 500):
                r = bench_pop(d, sync, batch, 20_000 if batch > 1 else 3_000, a.readings)
                print(f"  {sync.value:<7} N={batch:<4} {r:>10,.0f} msgs/s")


if __name__ == "__main__":
    main()
