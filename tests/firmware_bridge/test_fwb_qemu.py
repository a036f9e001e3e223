"""The cross-compiled Cortex-M firmware boots under qemu-system-arm and delivers readings to the driver."""

from __future__ import annotations

import asyncio
import glob
import time

import pytest
import serial
from fwb_helpers import CommitClock, QemuNode, make_driver

from firmware_bridge import codec as c
from firmware_bridge.framing import FrameError, split
from firmware_bridge.link import NodeLink


@pytest.fixture
def qemu(arm_build):
    node = QemuNode(arm_build / "fwb_node_an385.elf").start()
    yield node
    node.stop()


async def test_cortex_m_firmware_delivers_readings_end_to_end(qemu, tmp_path):
    commits = CommitClock()
    drv, pool = make_driver(qemu.pty, tmp_path / "state", commits=commits, describe_timeout=60.0,
                            writable=("interval_ms", "output0"), timeout=5.0, wait=2.0)
    try:
        assert [(m.name, m.unit) for m in drv.metrics()] == [("sample", ""), ("temperature", "degC"), ("output0", "")]
        samples = []
        deadline = time.monotonic() + 120  # an emulated board on a loaded machine: bounded by time, not polls
        while not samples and time.monotonic() < deadline:
            samples += await drv.read()
        assert await drv.write("interval_ms", 100) == 100
        assert await drv.write("output0", 1) == 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            samples += await drv.read()
            commits.commit_now()
            seqs = [s.value for s in samples if s.metric == "sample"]
            if len(seqs) >= 15:
                break
            await asyncio.sleep(0.05)
        assert len(seqs) == len(set(seqs)) >= 15  # each reading once
        assert sorted(seqs) == list(range(1, len(seqs) + 1))  # and none missing
        assert [s.value for s in samples if s.metric == "output0"][-1] == 1
        d = drv.diagnostics()
        assert d["firmware"] == "an385-1.0.0" and d["node_id"] == "a3850001"
        assert d["acked_seq"] >= len(seqs) - 5 and d["node_dropped"] == 0
        assert d["time_error_ms"] is not None
    finally:
        await pool.close()


def read_hello(pty: str, timeout: float = 60.0) -> c.Hello:
    """Ask the emulated node to describe itself and return its HELLO."""
    link = NodeLink()
    with serial.Serial(pty, 115200, timeout=0.1) as ser:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ser.write(b"\x00" + link.command_frame(c.Op.DESCRIBE, 0, 0)[1])
            for wire in split(ser.read(4096)):
                try:
                    msg = c.decode(wire).msg
                except FrameError:
                    continue
                if isinstance(msg, c.Hello):
                    return msg
    raise AssertionError(f"no HELLO from {pty}")


def test_boots_in_the_same_host_second_get_different_boot_ids(arm_build, monkeypatch):
    # the host clock stands still (libfaketime): every boot sees the same second
    lib = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
    if lib is None:
        raise RuntimeError("libfaketime is missing: apt-get install faketime (tests/run.sh does)")
    monkeypatch.setenv("LD_PRELOAD", lib)
    monkeypatch.setenv("FAKETIME", "2026-12-05 12:00:00")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    ids = []
    for _ in range(5):
        node = QemuNode(arm_build / "fwb_node_an385.elf").start()
        try:
            ids.append(read_hello(node.pty).boot_id)
        finally:
            node.stop()
    assert len(set(ids)) == len(ids) and all(ids), [f"{i:08x}" for i in ids]
