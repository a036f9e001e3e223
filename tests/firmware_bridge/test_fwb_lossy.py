"""Lossy link: a proxy drops, corrupts and duplicates bytes between the node and the real agent,
the agent is killed with SIGKILL and restarted twice, and the node reboots once. Upstream (a real
mosquitto) receives every reading exactly once per (boot id, seq), or the node counted its loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from fwb_helpers import PosixNode
from fwb_proxy import LossyProxy

pytestmark = pytest.mark.timeout(240)
AGENT = Path(__file__).with_name("fwb_agent.py")


def config(tmp: Path, broker, port: Path) -> Path:
    path = tmp / "agent.toml"
    path.write_text(f"""
[gateway]
id = "gw-fwb"
state_dir = "{tmp / 'state'}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
reconnect_min = 0.1
reconnect_max = 0.5
[store]
commit_interval = 0.1
[lines.nodes]
type = "serial"
port = "{port}"
baudrate = 115200
reopen_min = 0.05
reopen_max = 0.5
[[devices]]
name = "node1"
type = "mcu_node"
line = "nodes"
poll_interval = 0.1
timeout = 1.0
wait = 0.1
anomaly = false
""")
    return path


class Agent:
    def __init__(self, cfg: Path, log: Path):
        self.cfg, self.log, self.proc = cfg, log, None

    def start(self) -> Agent:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, str(AGENT), str(self.cfg)], stdout=fh, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        return self

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def node_floor(state: Path) -> tuple[int | None, int]:
    try:
        raw = json.loads((state / "firmware_bridge" / "node1.json").read_text())
        return raw.get("boot_id"), raw.get("floor", 0)
    except (FileNotFoundError, ValueError):
        return None, 0


def upstream(messages) -> Counter:
    """(boot id, seq) -> how many times it arrived, counting each outbox message (seq) once."""
    bodies = {}
    for m in messages:
        if "/telemetry/" in m.topic:
            body = orjson.loads(m.payload)
            bodies.setdefault(body["seq"], body)
    boot_at: dict[int, float] = {}
    samples = []
    for body in bodies.values():
        for r in body["readings"]:
            if r["metric"] == "boot_id":
                boot_at[r["ts"]] = r["value"]
            elif r["metric"] == "sample":
                samples.append((r["ts"], r["value"]))
    return Counter((int(boot_at[ts]), int(v)) for ts, v in samples)


def debug_occurrences(messages, keys):
    """(outbox seq, ts, sample) of every upstream copy of the given readings."""
    out = []
    for m in messages:
        if "/telemetry/" in m.topic:
            body = orjson.loads(m.payload)
            for r in body["readings"]:
                if r["metric"] == "sample" and any(int(r["value"]) == s for _, s in keys):
                    out.append((body["seq"], r["ts"], r["value"]))
    return out


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_lossy_link_gateway_kills_and_a_node_reboot_lose_nothing_uncounted(
        host_build, tmp_path, mosquitto, mqtt_subscriber):
    sub = mqtt_subscriber(mosquitto, "edge/#")
    proxy = LossyProxy(tmp_path / "ttyGW", drop=0.001, corrupt=0.001, dup=0.001, seed=7).start()
    node_bin = host_build / "fwb_node_posix"
    node = PosixNode(node_bin, tmp_path / "unused", "--device", proxy.node_path, "--interval", "100",
                     "--retransmit", "300")
    agent = Agent(config(tmp_path, mosquitto, proxy.link), tmp_path / "agent.log")
    state = tmp_path / "state"
    try:
        node.start()
        agent.start()
        assert wait_until(lambda: node_floor(state)[1] > 20, 60), agent.log.read_text()[-3000:]
        agent.kill9()  # gateway crash 1
        floor1 = node_floor(state)[1]
        agent.start()
        # the restarted gateway is back on the link (it commits again) before the node reboots
        assert wait_until(lambda: node_floor(state)[1] > floor1, 60), agent.log.read_text()[-3000:]
        status1 = node.stop()  # node reboot: its RAM (and unacknowledged readings) are gone
        node = PosixNode(node_bin, tmp_path / "unused", "--device", proxy.node_path, "--interval", "50",
                         "--retransmit", "300", "--samples", "120").start()
        # the gateway has committed readings of the new boot (it sends 120 over 6 s) when it crashes again
        assert wait_until(lambda: node_floor(state)[0] == node.boot_id and node_floor(state)[1] > 0, 60), \
            agent.log.read_text()[-3000:]
        agent.kill9()  # gateway crash 2
        agent.start()
        boot2 = node.boot_id
        assert wait_until(lambda: node_floor(state) == (boot2, 120), 90), agent.log.read_text()[-3000:]
        status2 = node.stop()
        got = Counter()

        def delivered() -> bool:
            nonlocal got
            got = upstream(sub.snapshot())
            return sum(1 for b, _ in got if b == boot2 & 0x7FFFFFFF) >= 120 - status2["dropped"]
        assert wait_until(delivered, 30)
    finally:
        agent.stop()
        node.kill()
        proxy.stop()
    b1, b2 = status1["boot"] & 0x7FFFFFFF, boot2 & 0x7FFFFFFF
    dups = [k for k, n in got.items() if n > 1]
    assert not dups, f"duplicates: {debug_occurrences(sub.snapshot(), dups[:3])}"
    seqs1 = {s for b, s in got if b == b1}
    seqs2 = {s for b, s in got if b == b2}
    # boot 1: what the node saw acknowledged arrived, except readings its ring overwrote (counted);
    # what it still held at the reboot died with its RAM (also reported)
    lost_acked = set(range(1, status1["acked"] + 1)) - seqs1
    assert len(lost_acked) <= status1["dropped"]
    assert len(set(range(1, status1["sampled"] + 1)) - seqs1) <= status1["unacked"] + status1["dropped"]
    # boot 2 (120 readings, all committed): every one arrived except ring overflow, which was counted
    assert status2["sampled"] == 120 and seqs2 <= set(range(1, 121))
    assert len(set(range(1, 121)) - seqs2) <= status2["dropped"]
    assert proxy.stats["dropped"] and proxy.stats["corrupted"] and proxy.stats["duplicated"]
    print(f"\nlossy link: proxy {proxy.stats}; boot 1 {status1}; boot 2 {status2}; "
          f"upstream {len(seqs1)} + {len(seqs2)} readings, {len(lost_acked)} + {120 - len(seqs2)} lost to overflow, "
          "0 duplicates")
