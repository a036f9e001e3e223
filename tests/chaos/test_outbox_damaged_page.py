"""One damaged page inside the outbox under the real agent: the file opens fine (the damage is in an
interior b-tree page of the outbox table), so only a read finds it. The agent must set the file aside
at the first read that fails, say so once in its log and on the event topic, keep collecting and
deliver again with seqs above every seq issued before; no traceback flood."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from mqtt_helpers import free_port

from .agent_proc import AgentProcess, agent_config, telemetry_index, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(240)


def stored_rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def interior_children(data: bytes, page: int, page_size: int) -> list[int]:
    """Child page numbers of an interior table b-tree page (its cells' left children, then the right one)."""
    base = (page - 1) * page_size
    head = base + (100 if page == 1 else 0)
    assert data[head] == 0x05, f"page {page} is not an interior table b-tree page"
    cells = int.from_bytes(data[head + 3:head + 5], "big")
    pointers = [int.from_bytes(data[head + 12 + 2 * i:head + 14 + 2 * i], "big") for i in range(cells)]
    return [int.from_bytes(data[base + p:base + p + 4], "big") for p in pointers] + \
        [int.from_bytes(data[head + 8:head + 12], "big")]


def damage_interior_page(db: Path, where: str) -> int:
    """Checkpoint the WAL into the file, then overwrite 32 bytes (the cell pointers) of an interior
    b-tree page of the outbox table: its root (``where="root"``) or an interior page below it, in the
    middle of the table (``"middle"``). Returns the page number."""
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    finally:
        conn.close()
    data = db.read_bytes()
    page = root
    if where == "middle":
        children = interior_children(data, root, page_size)
        page = children[len(children) // 2]
    interior_children(data, page, page_size)  # asserts it is an interior page
    with open(db, "r+b") as fh:
        fh.seek((page - 1) * page_size + 12)  # the cell pointer array follows the 12-byte page header
        fh.write(b"\xff" * 32)
    return page


@pytest.mark.parametrize("where", ["root", "middle"])  # found when the outbox opens / at the first read
def test_a_damaged_page_is_found_set_aside_and_delivery_resumes(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                                where: str) -> None:
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 300_000)
    log = tmp_path / "agent.log"
    db = tmp_path / "state" / "outbox.db"
    # first run: no broker, so messages pile up in the outbox (a b-tree three pages deep)
    nobody = SimpleNamespace(host="127.0.0.1", port=free_port())
    cfg = agent_config(tmp_path, nobody, {"meter": csv}, rows_per_read=50, poll=0.02)
    agent = AgentProcess(cfg, log).start()
    try:
        assert wait_until(lambda: stored_rows(db) >= 1000, 150), agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    unsent = stored_rows(db)
    damage_interior_page(db, where)

    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=20, poll=0.05)
    mark = len(log.read_bytes())
    agent = AgentProcess(cfg, log).start()

    def quarantine_events() -> list[dict]:
        return [orjson.loads(m.payload) for m in sub.snapshot()
                if m.topic.endswith("/event") and b"outbox_quarantined" in m.payload]
    def resumed() -> list[int]:  # seqs the new outbox delivered
        events = quarantine_events()
        return [s for s in telemetry_index(sub.snapshot())[0] if events and s > events[0]["resumed_seq"]]
    try:
        assert wait_until(lambda: len(resumed()) >= 30, 120), agent.log_tail()
        # a few more commit and pump cycles: still running, still delivering, nothing else goes wrong
        delivered = len(telemetry_index(sub.snapshot())[0])
        assert wait_until(lambda: len(telemetry_index(sub.snapshot())[0]) > delivered + 20, 60), agent.log_tail()
        assert agent.proc.poll() is None, agent.log_tail()
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    event, = quarantine_events()
    moved = Path(event["moved_to"])
    assert moved.parent == db.parent and moved.name.startswith("outbox.db.corrupt-") and moved.exists()
    assert "malformed" in event["reason"]
    print(f"damaged {where}: {unsent} rows stored; event {event}")
    # unknown when found at start; counted when found while running (rows before the damage went out)
    assert event["unsent"] is None if where == "root" else 0 < event["unsent"] <= unsent + 1000, (event, unsent)
    by_seq, _, conflicts = telemetry_index(sub.snapshot())
    assert conflicts == []
    assert event["resumed_seq"] >= unsent
    if where == "root":  # nothing was read from the damaged file
        assert min(by_seq) == min(resumed())
    text = log.read_bytes()[mark:].decode(errors="replace")
    assert text.count("was corrupt") == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
