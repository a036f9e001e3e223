"""The fleet path at scale on this machine, and the one command that starts the whole stack:
three RabbitMQ nodes (MQTT plugin), PostgreSQL 15, two ``edge-agent ingest`` consumers and N simulated
gateways (``edge-agent fleet``: real outboxes and uplinks).

Prints, from one run: readings/s committed into PostgreSQL (steady state, and draining a backlog
after the consumers were stopped for ``--pause`` seconds: the ingest's capacity), end-to-end lag
p50/p99 (reading taken -> row committed), ingest CPU-s per million readings, broker memory per node,
and the raw PostgreSQL insert rate measured in the same run (COPY of the same rows into a plain table:
the local limit), with the ratios between them. Checks exactly-once at the end.

    python tests/bench/bench_fleet.py [--gateways 1000] [--duration 600] [--interval 5] [--readings 20]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.chaos.fleet_run import (  # noqa: E402
    Consumer,
    check_exactly_once,
    migrate,
    sent_keys,
    start_fleet,
    wait_done,
    wait_landed,
)
from tests.fleet_helpers import Postgres, RabbitCluster, wait_for  # noqa: E402


def total(consumers: list[Consumer], key: str) -> float:
    return sum(c.stats().get(key, 0) for c in consumers)


def raw_insert_rate(dsn: str, rows: int, batch: int) -> float:
    """COPY ``rows`` readings into a plain table, ``batch`` per transaction: readings/s."""
    now = datetime.now(UTC)
    data = [(now, "gw-raw", "", i // 20, "meter1", f"v{i % 20}", 230.0, "V", 0) for i in range(rows)]
    with psycopg.connect(dsn) as c:
        c.execute("DROP TABLE IF EXISTS raw_readings")
        c.execute("CREATE TABLE raw_readings (LIKE readings)")
        c.commit()
        t0 = time.perf_counter()
        for i in range(0, rows, batch):
            with c.cursor().copy("COPY raw_readings FROM STDIN") as cp:
                for r in data[i:i + batch]:
                    cp.write_row(r)
            c.commit()
        rate = rows / (time.perf_counter() - t0)
        c.execute("DROP TABLE raw_readings")
        c.commit()
    return rate


def queue_depth(rabbit: RabbitCluster) -> int:
    for i in range(len(rabbit.nodes)):
        try:
            out = rabbit.ctl(i, "list_queues", "-q", "name", "messages", timeout=60)
        except (RuntimeError, OSError):
            continue
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "edge-ingest" and parts[1].isdigit():
                return int(parts[1])
    return 0


def lag_percentiles(dsn: str, since: datetime) -> tuple[float, float]:
    with psycopg.connect(dsn) as c:
        p50, p99 = c.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - data_ts)),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - data_ts))"
            " FROM messages WHERE kind = 'telemetry' AND received_at >= %s", [since]).fetchone()
    return p50 * 1000, p99 * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between a gateway's messages")
    ap.add_argument("--readings", type=int, default=20, help="readings per message")
    ap.add_argument("--pause", type=float, default=60, help="consumers stopped this long to build a backlog")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    pg = Postgres().start()
    rabbit = RabbitCluster(3)
    consumers: list[Consumer] = []
    try:
        t = time.monotonic()
        rabbit.start()
        print(f"3-node RabbitMQ cluster up in {time.monotonic() - t:.0f} s; PostgreSQL on {pg.port}", flush=True)
        migrate(pg.dsn)
        urls = rabbit.amqp_urls
        lanes = [["amqp", *[a for u in urls[i:] + urls[:i] for a in ("--url", u)]] for i in range(2)]
        consumers = [Consumer(tmp, f"c{i}", lanes[i], pg.dsn).start() for i in range(2)]
        fleet, summary = start_fleet(tmp, [f"127.0.0.1:{p}" for p in rabbit.mqtt_ports], gateways=args.gateways,
                                     processes=args.processes, duration=args.duration, protocol="3.1.1",
                                     interval=args.interval, readings=args.readings, resend=0.001,
                                     energy_every=720, id_prefix="b")
        offered = args.gateways * args.readings / args.interval
        print(f"{args.gateways} gateways offering {offered:.0f} readings/s for {args.duration:.0f} s", flush=True)
        warm = min(120.0, args.duration / 5)
        time.sleep(warm)
        steady_from = datetime.now(UTC)
        r0, cpu0, t0 = total(consumers, "readings"), total(consumers, "cpu_s"), time.monotonic()
        steady = max(30.0, args.duration / 2 - warm)
        time.sleep(steady)
        r1, cpu1, t1 = total(consumers, "readings"), total(consumers, "cpu_s"), time.monotonic()
        steady_rate = (r1 - r0) / (t1 - t0)
        cpu_per_m = (cpu1 - cpu0) / max(1, r1 - r0) * 1e6
        p50, p99 = lag_percentiles(pg.dsn, steady_from)
        mem = rabbit.memory_mb()
        # backlog: stop both consumers, let the queue fill, start them again and time the drain
        for c in consumers:
            c.stop()
        time.sleep(args.pause)
        backlog = queue_depth(rabbit)
        consumers = [Consumer(tmp, f"d{i}", lanes[i], pg.dsn).start() for i in range(2)]
        d0 = time.monotonic()
        wait_for(lambda: queue_depth(rabbit) < 1000, 900, "the backlog to drain", interval=1.0)
        drain_s = time.monotonic() - d0
        drain_readings = total(consumers, "readings")
        drain_rate = drain_readings / drain_s
        wait_done(fleet, args.duration + 600)
        doc, keys = sent_keys(summary)
        accepted = doc["messages"] - doc["undelivered"]
        print(f"broker cluster accepted {accepted:,} of {doc['messages']:,} messages in {doc['elapsed_s']:.0f} s "
              f"({accepted / doc['elapsed_s']:,.0f} msg/s); {doc['undelivered']:,} still in the outboxes after the drain")
        if doc["undelivered"]:
            wait_for(lambda: queue_depth(rabbit) == 0, 900, "the queue to drain", interval=2.0)
        else:
            wait_landed(pg.dsn, len(keys), "b", 900)
        figures = check_exactly_once(pg.dsn, doc, keys, "b") if not doc["undelivered"] else None
        avg_batch = max(1, int(total(consumers, "readings") / max(1, total(consumers, "batches"))))
        raw_batch = 5000  # the most a batch of 500 messages of 10 readings holds
        raw = raw_insert_rate(pg.dsn, 500_000, raw_batch)
        print(f"steady readings/s into PostgreSQL: {steady_rate:,.0f} (offered {offered:,.0f})")
        print(f"backlog drain readings/s (ingest capacity, 2 consumers): {drain_rate:,.0f} "
              f"({backlog:,} messages queued; {drain_readings:,.0f} readings in {drain_s:.1f} s)")
        print(f"raw PostgreSQL COPY readings/s ({raw_batch} per transaction, one connection): {raw:,.0f}; "
              f"the ingest's average batch while draining: {avg_batch} readings")
        print(f"ratio ingest capacity / raw COPY: {drain_rate / raw:.2f}; steady / raw: {steady_rate / raw:.3f}")
        print(f"end-to-end lag (steady state) p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
        print(f"ingest CPU-s per million readings (steady state, both consumers): {cpu_per_m:.1f}")
        print("broker memory per node (MB RSS): " + ", ".join(f"{m:.0f}" for m in mem))
        if figures is not None:
            print(f"exactly once: {figures['messages']:,} messages, {figures['readings']:,} readings, "
                  f"{figures['resends']} resends injected, 0 gaps, 0 duplicates")
        else:
            print("exactly-once check skipped: the broker did not take every message within the drain timeout")
    finally:
        for c in consumers:
            c.stop()
        rabbit.close()
        pg.close()


if __name__ == "__main__":
    main()
