"""Two addressed nodes on one shared line (RS-485 style): each talks only when its address is
polled, and each driver gets only its own node's readings."""

from __future__ import annotations

import asyncio
import time

from fwb_helpers import CommitClock, PosixNode
from fwb_proxy import SharedLine

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.bus.serial_port import SerialLineConfig
from agent.driver import DriverContext
from firmware_bridge import SPEC


async def test_two_addressed_nodes_share_one_line(host_build, tmp_path):
    line = SharedLine(tmp_path / "ttyRS485", nodes=2).start()
    nodes = [PosixNode(host_build / "fwb_node_posix", tmp_path / "unused", "--device", path, "--addr", str(addr),
                       "--node-id", str(0x100 + addr), "--interval", "50", "--retransmit", "300").start()
             for addr, path in zip((1, 2), line.node_paths, strict=True)]
    pool = BusPool({"rs485": SerialLineConfig(type="serial", port=str(line.link), baudrate=115200)}, LINE_KINDS)
    commits = CommitClock()
    ctx = DriverContext("gw", tmp_path / "state", pool, on_commit=commits.register)
    drivers = [SPEC.factory(SPEC.config_model(name=f"n{a}", type="mcu_node", line="rs485", address=a,
                                              node_id=0x100 + a), ctx) for a in (1, 2)]
    got: dict[int, list] = {1: [], 2: []}
    try:
        deadline = time.monotonic() + 120  # generous for a loaded machine; ends once both nodes delivered 10
        while time.monotonic() < deadline:
            for a, drv in zip((1, 2), drivers, strict=True):
                got[a] += await drv.read()
            commits.commit_now()
            if all(len([s for s in got[a] if s.metric == "sample"]) >= 10 for a in (1, 2)):
                break
            await asyncio.sleep(0.05)
        for _ in range(2):  # the acknowledgement of the last commit goes out with the next polls
            for a, drv in zip((1, 2), drivers, strict=True):
                got[a] += await drv.read()
            commits.commit_now()
    finally:
        await pool.close()
        for node in nodes:
            if node.proc is not None and node.proc.poll() is not None:
                node.kill()
    for a, drv, node in zip((1, 2), drivers, nodes, strict=True):
        d = drv.diagnostics()
        assert d["node_id"] == f"{0x100 + a:08x}" and d["boot_id"] == f"{node.boot_id:08x}"
        boots = {s.value for s in got[a] if s.metric == "boot_id"}
        assert boots == {node.boot_id & 0x7FFFFFFF}  # only its own node's readings
        seqs = [s.value for s in got[a] if s.metric == "sample"]
        assert len(seqs) == len(set(seqs)) >= 10
        assert 5 <= node.stop()["acked"] <= d["acked_seq"]  # acknowledged to the right node only
    line.stop()
