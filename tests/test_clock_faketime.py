"""An RTC-less boot, for real: ``edge-agent run`` under libfaketime (wall clock in 1970, monotonic
clock untouched: ``FAKETIME_DONT_FAKE_MONOTONIC=1``), asking a real chronyd (client) whether the clock
is synchronised, with a real chronyd NTP server on loopback that starts answering later, a real
pymodbus meter simulator and a real mosquitto.

The agent and its chronyd client run in a private mount namespace: its own ``/run`` (so ``chronyc``
finds the test's chronyd and nothing of the host's) and a boot id file bound over
``/proc/sys/kernel/random/boot_id`` (so a "reboot" is a new id). chronyd runs with ``-x`` and does not
touch the host clock: the test sets the agent's wall clock through libfaketime's timestamp file, as
chrony's step would.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.chaos.agent_proc import wait_until
from tests.sim_thread import free_port, simulator

LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
UNSYNCED = 64  # Quality.CLOCK_UNSYNCED
# libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC mistranslates clock_nanosleep(CLOCK_MONOTONIC,
# TIMER_ABSTIME), which Python 3.11's time.sleep uses: the sleep never ends (wolfcw/libfaketime#426).
# The agent never calls time.sleep, but subprocess's wait (time-source queries: chronyc) does; under
# libfaketime it sleeps with select() instead. A work-around for the tool, not a change to the agent.
SITECUSTOMIZE = """import select, time
time.sleep = lambda s: select.select([], [], [], max(0.0, s)) and None
"""
BOOTED_1970 = "@1970-01-01 00:00:10"

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(LIBFAKETIME is None or shutil.which("chronyd") is None or shutil.which("unshare") is None
                       or os.geteuid() != 0, reason="needs root, libfaketime, chrony and unshare (tests/run.sh)"),
]


class Chronyd:
    """A chronyd with its own config; ``-x``: never touches the system clock."""

    def __init__(self, directory: Path, name: str, conf: str):
        self.dir, self.name = directory, name
        self.conf = directory / f"{name}.conf"
        self.conf.write_text(conf + f"pidfile {directory / name}.pid\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Chronyd:
        log = open(self.dir / f"{self.name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class NamespacedAgent:
    """``edge-agent run`` under libfaketime, with a chronyd client, in a private mount namespace."""

    def __init__(self, tmp: Path, config: Path, ntp_port: int, boot_id: str):
        self.tmp = tmp
        self.log = tmp / "agent.log"
        (tmp / "boot_id").write_text(boot_id + "\n")
        client = tmp / "chrony-client.conf"
        client.write_text(f"server 127.0.0.1 port {ntp_port} iburst minpoll -4 maxpoll -4\nport 0\ncmdport 0\n"
                          f"pidfile {tmp / ('chrony-client-' + boot_id + '.pid')}\n")  # one per boot
        (tmp / "site").mkdir(exist_ok=True)
        (tmp / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {"PYTHONPATH": str(tmp / "site"), "LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(tmp / "faketime"),
               "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "1"}
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self.script = (
            "set -e\n"
            "mount -t tmpfs tmpfs /run\n"
            "mkdir -m 750 -p /run/chrony\n"
            f"mount --bind {tmp / 'boot_id'} /proc/sys/kernel/random/boot_id\n"
            f"chronyd -x -d -u root -f {client} >> {tmp / 'chrony-client.log'} 2>&1 &\n"
            f"exec env {exports} PYTHONUNBUFFERED=1 {sys.executable} -m agent.cli.main run --config {config}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> NamespacedAgent:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", self.script],
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the namespace's chronyd client, and the agent if stuck
        except ProcessLookupError:
            pass
        self.proc.wait(10)

        def group_gone() -> bool:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            return False
        wait_until(group_gone, 10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def set_clock(tmp: Path, spec: str) -> None:
    (tmp / "faketime").write_text(spec + "\n")


def agent_config(tmp: Path, broker, meter_port: int) -> Path:
    path = tmp / "agent.toml"
    path.write_text(
        f'[gateway]\nid = "gw-rtc"\nstate_dir = "{tmp / "state"}"\nrequire_time_sync = true\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nreconnect_min = 0.1\nreconnect_max = 0.5\n'
        '[store]\ncommit_interval = 0.1\n[health]\ninterval = 1\n'
        f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {meter_port}\ntimeout = 10\n'
        '[[devices]]\nname = "meter"\ntype = "modbus_meter"\nline = "meters"\nprofile = "sdm120"\n'
        'poll_interval = 0.5\ntimeout = 30\n')  # a live simulator; a loaded machine may take seconds
    return path


def telemetry(sub, since: int = 0) -> list[dict]:
    return [orjson.loads(m.payload) for m in sub.snapshot()[since:] if "/telemetry/" in m.topic]


def health(sub) -> dict | None:
    reports = [m for m in sub.snapshot() if m.topic.endswith("/health")]
    return orjson.loads(reports[-1].payload) if reports else None


def test_rtc_less_boots_under_libfaketime_and_chrony(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw-rtc/#")
    ntp_port = free_port()
    server = Chronyd(tmp_path, "chrony-server", f"port {ntp_port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\n"
                     f"local stratum 8\ncmdport 0\nbindcmdaddress {tmp_path / 'server.sock'}\n")
    os.chmod(tmp_path, 0o750)  # chronyd refuses a socket directory others can enter
    meter_port = free_port()
    with simulator("sdm120", tcp=f"127.0.0.1:{meter_port}", update_interval=None):
        cfg = agent_config(tmp_path, mosquitto, meter_port)
        # -- boot A: 1970, no NTP server answers; then the power is cut --------------------------
        set_clock(tmp_path, BOOTED_1970)
        agent = NamespacedAgent(tmp_path, cfg, ntp_port, "boot-a").start()
        try:
            assert wait_until(lambda: (h := health(sub)) is not None and h["pipeline"]["clock_waiting"] >= 5, 120), \
                agent.tail()
            assert telemetry(sub) == [], "readings of an unsynchronised clock were published as real time"
        finally:
            agent.proc.send_signal(signal.SIGKILL)
            agent.stop()
        # -- boot B: 1970 again; the rows of boot A can never be placed ---------------------------
        since = len(sub.snapshot())
        set_clock(tmp_path, BOOTED_1970)
        boot_b_start = time.time_ns() // 1_000_000
        agent = NamespacedAgent(tmp_path, cfg, ntp_port, "boot-b").start()
        try:
            assert wait_until(lambda: any(b.get("clock") == "estimated" for b in telemetry(sub, since)), 120), agent.tail()
            estimated = [r for b in telemetry(sub, since) if b.get("clock") == "estimated" for r in b["readings"]]
            assert estimated and all(r["q"] & UNSYNCED and r["ts"] < 86_400_000 for r in estimated)
            assert wait_until(lambda: health(sub)["pipeline"]["clock_waiting"] >= 5, 60), agent.tail()
            assert all(b.get("clock") == "estimated" for b in telemetry(sub, since)), "boot B's readings must wait"
            # NTP arrives: chrony steps the clock (here: libfaketime's file) and reports sync
            real_before = time.time_ns() // 1_000_000
            set_clock(tmp_path, "+0")
            server.start()
            assert wait_until(lambda: any(b.get("clock") == "repaired" for b in telemetry(sub, since)), 120), agent.tail()
            assert wait_until(lambda: any("clock" not in b for b in telemetry(sub, since)), 60), agent.tail()
            assert wait_until(lambda: health(sub)["pipeline"]["clock_repaired"] >= 1, 30), agent.tail()
            final = health(sub)
        finally:
            agent.stop()
            server.stop()
    real_after = time.time_ns() // 1_000_000
    repaired = [r for b in telemetry(sub, since) if b.get("clock") == "repaired" for r in b["readings"]]
    # taken while the agent's clock said 1970: placed in real time, before the sync, with no flag left
    assert repaired and all(r["q"] & UNSYNCED == 0 for r in repaired)
    assert all(boot_b_start < r["ts"] < real_before + 5_000 for r in repaired), \
        sorted(r["ts"] for r in repaired)[:3]
    fresh = [r for b in telemetry(sub, since) if "clock" not in b for r in b["readings"]]
    assert fresh and all(real_before <= r["ts"] <= real_after and r["q"] & UNSYNCED == 0 for r in fresh), \
        [(r["ts"] - real_before, r["q"]) for r in fresh][:5]
    stamps = sorted({r["ts"] for r in repaired + fresh})
    assert all(b - a < 15_000 for a, b in zip(stamps, stamps[1:], strict=False)), "a hole at the sync"
    bodies = {b["seq"]: b for b in telemetry(sub, since)}
    assert final["pipeline"]["clock_steps"] >= 1
    assert final["pipeline"]["clock_repaired"] == sum(b.get("clock") == "repaired" for b in bodies.values())
    assert final["pipeline"]["clock_estimated"] == sum(b.get("clock") == "estimated" for b in bodies.values())
    assert "stepped by" in agent.log.read_text()
