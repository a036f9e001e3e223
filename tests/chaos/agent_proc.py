"""Run the real agent as a subprocess (`edge-agent run`) for fault-injection tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson


def write_replay_csv(path: Path, n: int, *, start: str = "2026-01-01T00:00:00", step_s: int = 60) -> list[float]:
    """A CSV with ``n`` distinct values (value i = i + 0.5) so every reading is identifiable."""
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start)
    values = [i + 0.5 for i in range(n)]
    lines = ["timestamp,value"] + [f"{(t0 + timedelta(seconds=i * step_s)).isoformat()},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return values


def agent_config(tmp: Path, broker, devices: dict[str, Path], *, rows_per_read: int = 100, poll: float = 0.05,
                 max_bytes: int = 64 * 1024 * 1024, extra: str = "") -> Path:
    body = [f'[gateway]\nid = "gw-chaos"\nstate_dir = "{tmp / "state"}"\n',
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nreconnect_min = 0.1\nreconnect_max = 0.5\n'
            f'readings_per_message = 50\n',
            f'[store]\nmax_bytes = {max_bytes}\ncommit_interval = 0.1\n', '[health]\ninterval = 1\n', extra]
    for name, csv in devices.items():
        body.append(f'[[devices]]\nname = "{name}"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\nloop = false\n'
                    f'timestamps = "original"\nmax_rows_per_read = {rows_per_read}\npoll_interval = {poll}\n')
    path = tmp / "agent.toml"
    path.write_text("\n".join(body))
    return path


class AgentProcess:
    def __init__(self, config: Path, log: Path):
        self.config = config
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> AgentProcess:
        fh = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(self.config)],
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            fh.close()
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:  # a clean stop is quick; a loaded machine is not
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode if self.proc else 0

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def telemetry_index(messages) -> tuple[dict[int, bytes], set[tuple[str, int, float]], list[tuple[int, bytes, bytes]]]:
    """seq -> payload, the set of unique readings, and any (seq, payload1, payload2) that differ."""
    by_seq: dict[int, bytes] = {}
    readings: set[tuple[str, int, float]] = set()
    conflicts = []
    for m in messages:
        if "/telemetry/" not in m.topic and "/agg/" not in m.topic and not m.topic.endswith("/event"):
            continue
        body = orjson.loads(m.payload)
        seq = body["seq"]
        if seq in by_seq and by_seq[seq] != m.payload:
            conflicts.append((seq, by_seq[seq], m.payload))
        by_seq.setdefault(seq, m.payload)
        for r in body.get("readings", ()):
            readings.add((body["device"], r["ts"], r["value"]))
    return by_seq, readings, conflicts


def wait_until(pred, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()
