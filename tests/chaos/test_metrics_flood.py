"""A local client holding far more connections to the metrics endpoint than the agent has file
descriptors (1,200 against a limit of 1,024): the endpoint, a side feature, must stay within its cap,
and the uplink must keep delivering, reconnect after a broker restart, and log no traceback."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Self

import psutil
import pytest
from mqtt_helpers import free_port

from agent.metrics.server import MAX_CONNECTIONS

from .agent_proc import AgentProcess, agent_config, telemetry_index, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(240)
HOLD = 1200
AGENT_FDS = 1024


class Background:
    """``_run`` on a thread for the span of a ``with`` block; it loops until ``stop`` is set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


class Hog(Background):
    """Keeps ``n`` connections open to a port, replacing each one the server closes."""

    def __init__(self, port: int, n: int):
        super().__init__()
        self.port, self.n = port, n
        self.socks: list[socket.socket] = []
        self.closed = 0  # connections the server has closed (accepted, timed out, let go)

    def _open(self) -> None:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks.append(s)

    def _run(self) -> None:
        while not self.stop.is_set():
            while len(self.socks) < self.n:
                self._open()
            poller = select.poll()  # not select(): descriptors above 1024 are the point here
            by_fd = {s.fileno(): s for s in self.socks}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            readable = [by_fd[fd] for fd, _ in poller.poll(200)]
            for s in readable:  # closed by the server (or answered): replace it
                with contextlib.suppress(OSError):
                    s.close()
                self.socks.remove(s)
                self.closed += 1

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for s in self.socks:
            s.close()


class FdWatch(Background):
    """Samples a process's open descriptors all along (not at one chosen moment); ``most`` is the peak."""

    def __init__(self, proc: psutil.Process):
        super().__init__()
        self.proc, self.most = proc, 0

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.most = max(self.most, self.proc.num_fds())
            self.stop.wait(0.05)


def test_a_connection_flood_on_metrics_never_starves_the_uplink(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < HOLD + 200:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low for this test's client")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HOLD + 200), hard))
    sub = mqtt_subscriber(mosquitto, "edge/gw-chaos/#")
    csv = tmp_path / "meter.csv"
    write_replay_csv(csv, 500_000)
    port = free_port()
    cfg = agent_config(tmp_path, mosquitto, {"meter": csv}, rows_per_read=10, poll=0.05,
                       extra=f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    own = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (AGENT_FDS, hard))  # the agent inherits a Pi's usual limit
    try:
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, own)
    proc = psutil.Process(agent.proc.pid)

    def seqs() -> set[int]:
        return set(telemetry_index(sub.snapshot())[0])
    try:
        assert wait_until(lambda: len(seqs()) >= 10, 90), agent.log_tail()
        with Hog(port, HOLD) as hog, FdWatch(proc) as watch:
            assert wait_until(lambda: len(hog.socks) >= HOLD, 30)
            # the endpoint has worked through the flood: it accepted a round of connections up to its
            # cap, timed them out and let them go, however long that takes on this machine
            assert wait_until(lambda: hog.closed >= MAX_CONNECTIONS, 120), agent.log_tail()
            before = max(seqs())
            assert wait_until(lambda: max(seqs()) > before + 20, 60), f"delivery stalled\n{agent.log_tail()}"
            mosquitto.restart()  # the uplink needs a new socket now
            after = max(seqs())
            assert wait_until(lambda: max(seqs()) > after + 20, 60), f"no delivery after the restart\n{agent.log_tail()}"
        fds = watch.most
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            assert r.status == 200  # the endpoint serves again once the flood is gone
    finally:
        assert agent.terminate() == 0, agent.log_tail()
    print(f"agent descriptors while {HOLD} connections were held: {fds} (limit {AGENT_FDS})")
    assert fds < 100, fds
    log = agent.log.read_text(errors="replace")
    assert "Traceback" not in log and "out of system resource" not in log, log[-3000:]
