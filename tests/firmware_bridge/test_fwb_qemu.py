"""The cross-compiled Cortex-M firmware boots under qemu-system-arm and delivers readings to the driver."""

from __future__ import annotations

import asyncio

import pytest
from fwb_helpers import CommitClock, QemuNode, make_driver


@pytest.fixture
def qemu(arm_build):
    node = QemuNode(arm_build / "fwb_node_an385.elf").start()
    yield node
    node.stop()


async def test_cortex_m_firmware_delivers_readings_end_to_end(qemu, tmp_path):
    commits = CommitClock()
    drv, pool = make_driver(qemu.pty, tmp_path / "state", commits=commits, describe_timeout=10.0,
                            writable=("interval_ms", "output0"), timeout=5.0, wait=2.0)
    try:
        assert [(m.name, m.unit) for m in drv.metrics()] == [("sample", ""), ("temperature", "degC"), ("output0", "")]
        samples = []
        for _ in range(10):
            samples += await drv.read()
            if samples:
                break
        assert await drv.write("interval_ms", 100) == 100
        assert await drv.write("output0", 1) == 1
        for _ in range(100):
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
