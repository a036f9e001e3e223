"""A corrupt, lost or stale outbox database never makes a `seq` carry a second body; `buffer` commands
read the outbox without creating or changing any file and report a missing or corrupt one clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson

from agent.store import Outbox, Pending, Priority
from agent.store.quarantine import open_outbox
from agent.store.seqmark import SEQ_BLOCK, Mark, mark_path, write_mark

MB = 1024 * 1024
GARBAGE = b"\x13\x37 not an outbox, a flash card gone bad \xff\xfe" * 400


def fill(path: Path, n: int, start: int = 0) -> list[int]:
    with Outbox(path, max_bytes=8 * MB, gateway="gw1") as ob:
        return [s for i in range(start, start + n, 100)
                for s in ob.append([Pending(Priority.RAW, "t", {"v": 1, "i": k}) for k in range(i, min(i + 100, start + n))])]


def test_corrupt_outbox_is_set_aside_and_seq_continues_above_every_seq_issued(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    issued = fill(db, 1500)  # more than one reserved block
    db.write_bytes(GARBAGE)
    ob, quarantined = open_outbox(db, max_bytes=8 * MB, gateway="gw1")
    try:
        assert quarantined is not None
        assert quarantined.moved_to.name.startswith("outbox.db.corrupt-") and quarantined.moved_to.name.endswith("Z")
        assert quarantined.moved_to.read_bytes() == GARBAGE, "kept for the technician, untouched"
        assert "not a database" in quarantined.reason
        new = ob.append([Pending(Priority.EVENT, "e", quarantined.event(1))])
        assert new[0] > max(issued) and new[0] == quarantined.resumed_seq + 1
        body = orjson.loads(ob.peek(1)[0].payload)
        assert body["kind"] == "outbox_quarantined" and body["moved_to"] == str(quarantined.moved_to)
    finally:
        ob.close()
    # the ordinary restart continues the new outbox without a gap
    ob, again = open_outbox(db, max_bytes=8 * MB, gateway="gw1")
    with ob:
        assert again is None and ob.append([Pending(Priority.RAW, "t", {"v": 1})]) == [new[0] + 1]


def test_lost_or_restored_old_database_cannot_reuse_a_seq(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    fill(db, 300)
    shutil.copy(db, tmp_path / "old-copy.db")  # a backup, restored later
    issued = fill(db, 2500, start=300)
    shutil.copy(tmp_path / "old-copy.db", db)
    assert fill(db, 1)[0] > max(issued), "a restored old database continued below the seqs already issued"
    top = max(issued) + SEQ_BLOCK * 2
    for f in tmp_path.glob("outbox.db*"):
        f.unlink()  # lost altogether
    assert max(issued) < fill(db, 1)[0] <= top


def test_kill9_restart_continues_without_a_gap(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    code = ("import sys, os; from pathlib import Path; from agent.store import Outbox, Pending, Priority\n"
            "ob = Outbox(Path(sys.argv[1]), max_bytes=8 << 20, gateway='gw1')\n"
            "ob.append([Pending(Priority.RAW, 't', {'v': 1}) for _ in range(50)])\n"
            "os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code, str(db)], check=False)
    assert fill(db, 1) == [51]


def test_crash_between_reserving_and_committing_leaves_no_gap(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    fill(db, 10)
    write_mark(mark_path(db), Mark(reserved=10 + SEQ_BLOCK + 5, floor=10))  # reserved, then killed
    assert fill(db, 1) == [11]
    for f in tmp_path.glob("outbox.db*"):
        f.unlink()
    assert fill(db, 1) == [10 + SEQ_BLOCK + 6]  # the seqs reserved may have been used: never again


def test_quarantine_event_matches_the_documented_schema(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "payload.schema.json").read_text())
    db = tmp_path / "outbox.db"
    db.write_bytes(GARBAGE)
    ob, quarantined = open_outbox(db, max_bytes=8 * MB, gateway="gw1")
    with ob:
        assert quarantined is not None
        ob.append([Pending(Priority.EVENT, "edge/gw1/event", quarantined.event(1_767_226_030_000))])
        body = orjson.loads(ob.peek(1)[0].payload)
    jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/event"}).validate(body)


def buffer(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "buffer", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "EDGE_AGENT_CONFIG": str(cfg)})


def write_config(tmp: Path) -> Path:
    cfg = tmp / "agent.toml"
    cfg.write_text(f'[gateway]\nid = "gw1"\nstate_dir = "{tmp / "state"}"\n[mqtt]\nhost = "127.0.0.1"\n')
    return cfg


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in d.iterdir()} if d.exists() else {}


def test_buffer_commands_never_create_state_files(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for args in (["stats"], ["export"], ["export", "-o", str(tmp_path / "out.jsonl")]):
        r = buffer(cfg, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"no outbox at {tmp_path / 'state' / 'outbox.db'}: the agent has not run" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "out.jsonl").exists()
    # with an outbox from a stopped agent: read, nothing created or modified (no -wal/-shm either)
    fill(tmp_path / "state" / "outbox.db", 7)
    before = snapshot(tmp_path / "state")
    stats = json.loads(buffer(cfg, "stats", "--json").stdout)
    assert stats["depth"] == 7 and stats["last_seq"] == 7
    assert len(buffer(cfg, "export").stdout.splitlines()) == 7
    assert snapshot(tmp_path / "state") == before


def test_buffer_reports_a_corrupt_outbox_without_traceback(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    fill(tmp_path / "state" / "outbox.db", 3)
    (tmp_path / "state" / "outbox.db").write_bytes(GARBAGE)
    for args in (["stats"], ["export"]):
        r = buffer(cfg, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"outbox {tmp_path / 'state' / 'outbox.db'} is corrupt (file is not a database)" in r.stderr
        assert "outbox.db.corrupt-" in r.stderr  # says what the agent will do with it
    assert (tmp_path / "state" / "outbox.db").read_bytes() == GARBAGE
    ob, quarantined = open_outbox(tmp_path / "state" / "outbox.db", max_bytes=8 * MB, gateway="gw1")  # agent start
    ob.close()
    assert quarantined is not None
    stats = json.loads(buffer(cfg, "stats", "--json").stdout)
    assert stats["quarantined"] == [str(quarantined.moved_to)] and stats["depth"] == 0
    assert stats["last_seq"] == quarantined.resumed_seq >= 3  # where the new outbox continues


def test_buffer_accepts_config_before_and_after_the_subcommand(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    fill(tmp_path / "state" / "outbox.db", 4)
    env = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_CONFIG"}
    for args in (["--config", str(cfg), "stats", "--json"], ["stats", "--config", str(cfg), "--json"],
                 ["-c", str(cfg), "export"]):
        r = subprocess.run([sys.executable, "-m", "agent.cli.main", "buffer", *args], capture_output=True, text=True,
                           timeout=60, env=env)
        assert r.returncode == 0, (args, r.stderr)
        assert ('"depth": 4' in r.stdout) if "stats" in args else len(r.stdout.splitlines()) == 4
