"""The fleet path end to end, shared by the chaos test and the benchmark: ingest consumers and a
simulated fleet as real subprocesses (``edge-agent ingest``, ``edge-agent fleet``), and the checks
on what landed in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psycopg

from tests.fleet_helpers import wait_for

EDGE_AGENT = [sys.executable, "-m", "agent.cli.main"]


class Consumer:
    """One ``edge-agent ingest`` process; ``stats()`` reads its stats file."""

    def __init__(self, tmp: Path, name: str, args: list[str], dsn: str):
        self.name = name
        self.lane_args = args
        self.stats_path = tmp / f"{name}.stats.json"
        self.stats_path.unlink(missing_ok=True)
        self.log = tmp / f"{name}.log"
        self.args = [*EDGE_AGENT, "ingest", *args, "--dsn", dsn, "--stats-file", str(self.stats_path),
                     "--stats-interval", "0.5"]
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 60) -> Consumer:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._check_alive() and self.stats_path.exists(), ready_timeout, f"consumer {self.name} ready")
        return self

    def _check_alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"consumer {self.name} exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return True

    def stats(self) -> dict:
        try:
            return orjson.loads(self.stats_path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def migrate(dsn: str) -> None:
    subprocess.run([*EDGE_AGENT, "ingest", "migrate", "--dsn", dsn], check=True, capture_output=True, timeout=120)


def start_fleet(tmp: Path, hosts: list[str], *, gateways: int, processes: int, duration: float, protocol: str,
                interval: float = 1.0, readings: int = 10, resend: float = 0.02, energy_every: int = 10,
                id_prefix: str = "gw") -> tuple[subprocess.Popen, Path]:
    summary = tmp / f"fleet-{id_prefix}.json"
    args = [*EDGE_AGENT, "fleet", "-n", str(gateways), "-p", str(processes), "--protocol", protocol,
            "--state-dir", str(tmp / f"fleet-{id_prefix}"), "--duration", str(duration), "--interval", str(interval),
            "--readings", str(readings), "--resend", str(resend), "--energy-every", str(energy_every),
            "--id-prefix", id_prefix, "--summary", str(summary), "--drain-timeout", "150"]
    for h in hosts:
        args += ["--host", h]
    log = (tmp / f"fleet-{id_prefix}.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), summary


def sent_keys(summary: Path) -> tuple[dict, set[tuple[str, str, int]]]:
    """The fleet's summary and every (gateway, stream, seq) it stored in an outbox."""
    doc = orjson.loads(summary.read_bytes())
    keys = set()
    for g in doc["gateways"]:
        if g["first_seq"] is not None:
            keys.update((g["gateway"], g["stream"], s) for s in range(g["first_seq"], g["last_seq"] + 1))
    return doc, keys


def landed(dsn: str, prefix: str, table: str = "messages") -> int:
    """Rows of the gateways ``prefix``* committed in PostgreSQL (``messages``, ``energy`` …)."""
    with psycopg.connect(dsn) as c:
        return c.execute(f"SELECT count(*) FROM {table} WHERE gateway LIKE %s", [prefix + "%"]).fetchone()[0]


def wait_landed(dsn: str, expected: int, prefix: str, timeout: float) -> None:
    wait_for(lambda: landed(dsn, prefix) >= expected, timeout, f"{expected} messages in PostgreSQL", interval=1.0)


def wait_flowing(dsn: str, prefix: str, more: int, timeout: float, what: str) -> None:
    """Wait until ``more`` messages beyond those committed now have landed: the path carries traffic."""
    target = landed(dsn, prefix) + more
    wait_for(lambda: landed(dsn, prefix) >= target, timeout, f"{more} more messages in PostgreSQL ({what})",
             interval=0.5)


def wait_settled(dsn: str, prefix: str, quiet: float, timeout: float) -> int:
    """Wait until no message of ``prefix``* has landed for ``quiet`` seconds (the consumers hold nothing
    more); the count."""
    last, since = -1, time.monotonic()

    def still() -> bool:
        nonlocal last, since
        n = landed(dsn, prefix)
        if n != last:
            last, since = n, time.monotonic()
        return time.monotonic() - since >= quiet
    wait_for(still, timeout, f"the consumers to commit what they hold ({prefix}*)", interval=0.5)
    return last


def end_fleet(proc: subprocess.Popen) -> None:
    """End the fleet's sending now (SIGTERM: every gateway stops, drains its outbox and reports)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)


def check_exactly_once(dsn: str, doc: dict, keys: set[tuple[str, str, int]], prefix: str) -> dict:
    """rows = distinct keys sent, no gaps, no duplicates; returns the figures."""
    with psycopg.connect(dsn) as c:
        got = {(g, s, q) for g, s, q in c.execute(
            "SELECT gateway, stream, seq FROM messages WHERE gateway LIKE %s", [prefix + "%"])}
        readings, distinct = c.execute(
            "SELECT count(*), count(DISTINCT (gateway, stream, seq, metric)) FROM readings WHERE gateway LIKE %s",
            [prefix + "%"]).fetchone()
        gaps = c.execute("SELECT count(*) FROM gaps WHERE gateway LIKE %s", [prefix + "%"]).fetchone()[0]
        energy = c.execute("SELECT count(*) FROM energy WHERE gateway LIKE %s", [prefix + "%"]).fetchone()[0]
        rejected = c.execute("SELECT count(*) FROM rejected").fetchone()[0]
    missing, extra = keys - got, got - keys
    assert not missing, f"{len(missing)} keys sent but not stored, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} keys stored but never sent, e.g. {sorted(extra)[:5]}"
    assert len(got) == len(keys) == doc["messages"]
    assert readings == distinct == doc["readings"], (readings, distinct, doc["readings"])
    assert gaps == 0
    assert rejected == 0
    return {"messages": len(got), "readings": readings, "energy": energy, "resends": doc["resends"]}


def wait_done(proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("the fleet did not finish")
        time.sleep(0.5)
