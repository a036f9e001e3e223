"""The uplink reads what the outbox has just committed without querying the table, and reads exactly
what the table holds: the same rows, in order, acknowledged ones left out, held ones only when asked,
evicted and deleted ones gone."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_uplink import TOPICS, Running, config, telemetry, until

from agent.store import Outbox
from agent.store.rows import Pending, Priority

BURSTS = 5
ROWS = 10


async def test_the_uplink_reads_fresh_commits_without_a_query(mosquitto, tmp_path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw1")
    reads: list[str] = []
    outbox.db.conn.set_trace_callback(lambda sql: reads.append(sql) if sql.startswith("SELECT rowid, seq") else None)
    try:
        async with Running(config(mosquitto), outbox) as up:
            await until(lambda: up.connected, what="connected")
            base = len(reads)
            for burst in range(BURSTS):
                outbox.append([telemetry(burst * ROWS + k) for k in range(ROWS)])
                up.wake()
                await until(lambda b=burst: up.stats().acked == (b + 1) * ROWS, what="burst acknowledged")
            assert outbox.unsent == 0
            assert reads[base:] == []
    finally:
        outbox.close()


def _message(i: int, *, held: bool, size: int) -> Pending:
    body = {"v": 1, "device": "meter1", "readings": [{"ts": i, "metric": "m", "value": float(i), "unit": "W", "q": 0}],
            "pad": "x" * size}
    return Pending(Priority.RAW if i % 3 else Priority.EVENT, TOPICS.telemetry("meter1"), body, 1,
                   ("boot-1", 1000 + i) if held else None)


_op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 6), st.booleans(), st.sampled_from([100, 3000, 40_000])),
    st.tuples(st.just("ack"), st.integers(0, 2**31), st.integers(0, 4)),
    st.tuples(st.just("delete")),
    st.tuples(st.just("read"), st.integers(0, 2**31), st.integers(1, 8), st.booleans()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=30))
@example(ops=[("append", 6, False, 40_000), ("read", 0, 8, False)])  # an append larger than the cap
@example(ops=[("append", 3, True, 100), ("read", 0, 8, False)])  # a row held for a clock sync
@example(ops=[("append", 3, False, 100), ("ack", 0, 2), ("delete",), ("read", 0, 8, True)])
def test_a_peek_returns_what_the_table_holds(ops) -> None:
    with tempfile.TemporaryDirectory() as d:
        # a small cap: large appends evict the oldest rows
        ob = Outbox(Path(d) / "outbox.db", max_bytes=256 * 1024, gateway="gw1")
        try:
            n, positions, below = 0, [0], 0
            for op in ops:
                if op[0] == "append":
                    below = ob._tail.end or 0  # the newest row before this append
                    ob.append([_message(n + k, held=op[2] and k == 0, size=op[3]) for k in range(op[1])])
                    n += op[1]
                    positions = [0, *(r.rowid for r in ob._peek_db(1000, 0, held=True))]
                elif op[0] == "ack":
                    start = positions[op[1] % len(positions)]
                    ob.mark_acked(range(start + 1, start + 1 + op[2]))
                elif op[0] == "delete":
                    ob.delete()
                elif op[0] == "read":
                    after = positions[op[1] % len(positions)]
                    assert ob.peek(op[2], after, held=op[3]) == ob._peek_db(op[2], after, held=op[3])
                    # and right below the rows of the last append, below its last row, past the newest row
                    for after in (below, max(0, positions[-1] - 1), positions[-1], positions[-1] + 5):
                        assert ob.peek(op[2], after, held=op[3]) == ob._peek_db(op[2], after, held=op[3])
        finally:
            ob.close()
