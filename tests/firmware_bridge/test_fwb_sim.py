"""The Python node simulator (``edge-agent simulate mcu-node``) with the driver; ring overflow accounting."""

from __future__ import annotations

import asyncio
import threading

from fwb_helpers import CommitClock, make_driver

from firmware_bridge.sim import McuNodeSim


class SimThread:
    """The simulator on its own event loop, as a separate device would be (the driver's start-up
    discovery blocks the gateway's loop)."""

    def __init__(self, **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim: McuNodeSim = asyncio.run_coroutine_threadsafe(self._start(kw), self.loop).result(10)

    async def _start(self, kw) -> McuNodeSim:
        return await McuNodeSim(**kw).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def test_simulator_feeds_the_driver_and_overflow_is_counted_then_skipped(tmp_path):
    st = SimThread(interval_ms=20, ring=8, retransmit_s=0.2, seed=3, baudrate=115200)
    sim = st.sim
    commits = CommitClock()
    drv, pool = make_driver(sim.path, tmp_path / "state", commits=commits)
    try:
        assert [m.name for m in drv.metrics()] == ["temperature", "humidity", "pulses", "output0"]
        first = []
        for _ in range(600):  # up to 30 s on a busy machine
            first += await drv.read()
            if {s.metric for s in first} >= {"temperature", "humidity"}:
                break
            await asyncio.sleep(0.05)
        assert {s.metric for s in first} >= {"temperature", "humidity"}
        # the gateway cannot commit for a while: the node's 8-slot ring overflows and counts it
        for _ in range(600):  # up to 30 s
            if sim.dropped:
                break
            await asyncio.sleep(0.05)
        assert sim.dropped > 0
        for _ in range(6):
            await drv.read()
            commits.commit_now()
            await asyncio.sleep(0.05)
        await drv.read()
        d = drv.diagnostics()
        assert 0 < d["node_dropped"] <= sim.dropped
        # the acknowledged floor moved past the readings the node gave up, so its ring drains
        assert d["acked_seq"] >= sim.dropped
        assert len(sim.ring) < sim.capacity
    finally:
        await pool.close()
        st.stop()
