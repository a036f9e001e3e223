"""Run the POSIX reference node as a subprocess on a pty, and build an mcu_node driver on its line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.serial_port import SerialLineConfig
from agent.driver import DriverContext
from firmware_bridge import SPEC


class PosixNode:
    """The compiled reference firmware (POSIX port); ``link`` is a stable symlink to its pty."""

    def __init__(self, binary: Path, link: Path, *args: str):
        self.binary, self.link, self.args = binary, link, args
        self.proc: subprocess.Popen | None = None
        self.boot_id = 0
        self.status: dict[str, int] = {}

    def start(self) -> PosixNode:
        self.proc = subprocess.Popen([str(self.binary), "--link", str(self.link), *self.args],
                                     stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:  # "PTY <path>" (own pty only), then "BOOT <id>"
            if line.startswith("BOOT "):
                self.boot_id = int(line.split()[1])
                break
        if not self.boot_id:
            self.kill()
            raise RuntimeError("the node did not print its boot id")
        return self

    def stop(self) -> dict[str, int]:
        """SIGTERM; returns the node's final STATUS counters."""
        if self.proc is None:
            return self.status
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        m = re.search(r"STATUS (.*)", out or "")
        self.status = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())} if m else {}
        self.proc = None
        return self.status

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class CommitClock:
    """Stands in for the pipeline's commit hook: commits happen when the test says so."""

    def __init__(self):
        self.listeners: list = []

    def register(self, fn) -> None:
        self.listeners.append(fn)

    def commit_now(self) -> None:
        mark = time.monotonic()
        for fn in self.listeners:
            fn(mark)


def make_driver(port: str, state_dir: Path, *, commits=None, baudrate: int = 115200, **cfg):
    line = SerialLineConfig(type="serial", port=port, baudrate=baudrate, reopen_min=0.05, reopen_max=0.2)
    pool = BusPool({"nodes": line}, LINE_KINDS)
    cfg.setdefault("describe_timeout", 30.0)  # the node answers at once, but a loaded machine may take seconds
    config = SPEC.config_model(name="node1", type="mcu_node", line="nodes", **cfg)
    ctx = DriverContext("gw", state_dir, pool, on_commit=commits.register if commits else None)
    return SPEC.factory(config, ctx), pool


class QemuNode:
    """The cross-compiled Cortex-M firmware on an emulated MPS2 AN385; UART0 is a host pty."""

    def __init__(self, elf: Path):
        self.elf = elf
        self.proc: subprocess.Popen | None = None
        self.pty = ""

    def start(self, timeout: float = 60) -> QemuNode:
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an385", "-display", "none", "-monitor", "none", "-serial", "pty",
             "-semihosting-config", "enable=on,target=native", "-kernel", str(self.elf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"(/dev/pts/\d+)", line)
            if m:
                self.pty = m.group(1)
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("qemu did not report its serial pty")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
