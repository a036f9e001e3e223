"""The mcu_node driver against the compiled POSIX reference firmware over a real pty."""

from __future__ import annotations

import asyncio
import time

import pytest
from fwb_helpers import CommitClock, make_driver

from agent.errors import DeviceError
from agent.model import MetricKind


async def poll(drv, rounds: int, commits: CommitClock | None = None, pause: float = 0.05) -> list:
    out = []
    for _ in range(rounds):
        out += await drv.read()
        if commits is not None:
            commits.commit_now()
        await asyncio.sleep(pause)
    return out


def by_metric(samples, name):
    return [s for s in samples if s.metric == name]


async def test_node_describes_itself_and_readings_arrive_once_with_utc_time(node, tmp_path):
    t_before = time.time() * 1000  # the node keeps what it measured before the gateway listened
    n = node("--interval", "20", "--retransmit", "200")
    commits = CommitClock()
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=commits)
    try:
        specs = {m.name: m for m in drv.metrics()}
        assert specs["temperature"].unit == "degC" and specs["sample"].kind is MetricKind.COUNTER
        samples = await poll(drv, 15, commits)
        t_after = time.time() * 1000
        seqs = [s.value for s in by_metric(samples, "sample")]
        assert len(seqs) == len(set(seqs)) and len(seqs) >= 10  # every reading exactly once
        first = int(min(seqs))
        assert sorted(seqs) == list(range(first, first + len(seqs)))  # none missing after the first
        temps = {s.value for s in by_metric(samples, "temperature")}
        assert all(20.0 <= t < 21.0 for t in temps)  # raw 2000..2099, scale -2
        ts = [s.ts_ms for s in by_metric(samples, "sample")]
        assert all(t_before - 100 <= t <= t_after for t in ts)
        d = drv.diagnostics()
        assert d["boot_id"] == f"{n.boot_id:08x}" and d["firmware"] == "posix-1.0.0"
        assert 0 <= d["time_error_ms"] < 50
        assert d["acked_seq"] >= len(seqs) - 5  # acknowledged after the commits
        await drv.read()  # the acknowledgement of the last commit goes out with the next poll
    finally:
        await pool.close()
    status = n.stop()
    # on a loaded machine the node's ring may overflow before the gateway opens the port: then every
    # reading missing at the start is one the node counted as dropped, never a silent loss (the node
    # also counts a reading it had sent but saw no acknowledgement for before its slot was needed)
    assert status["acked"] >= len(seqs) - 5 and status["dropped"] >= first - 1


async def test_nothing_is_acknowledged_before_the_commit(node, tmp_path):
    n = node("--interval", "20", "--retransmit", "150")
    commits = CommitClock()  # the pipeline never commits
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=commits)
    try:
        samples = await poll(drv, 12, None, pause=0.1)
        seqs = [s.value for s in by_metric(samples, "sample")]
        assert seqs and len(seqs) == len(set(seqs))
        d = drv.diagnostics()
        assert d["acked_seq"] == 0 and d["acks_sent"] == 0
        assert d["duplicates"] > 0  # the node kept retransmitting; the gateway dropped the copies
        commits.commit_now()
        await poll(drv, 2)
        assert drv.diagnostics()["acked_seq"] >= len(seqs)
    finally:
        await pool.close()
    assert n.stop()["acked"] >= len(seqs)


async def test_gateway_restart_loses_nothing_and_repeats_nothing_committed(node, tmp_path):
    n = node("--interval", "20", "--retransmit", "150")
    state = tmp_path / "state"
    commits = CommitClock()
    drv, pool = make_driver(str(n.link), state, commits=commits)
    committed = {s.value for s in by_metric(await poll(drv, 8, commits), "sample")}
    tail = {s.value for s in by_metric(await poll(drv, 4), "sample")}  # read, never committed
    floor = drv.diagnostics()["acked_seq"]
    await pool.close()  # the gateway dies here; its state file holds the acknowledged floor
    assert floor > 0 and tail
    drv2, pool2 = make_driver(str(n.link), state, commits=(commits2 := CommitClock()))
    try:
        second = [s.value for s in by_metric(await poll(drv2, 12, commits2), "sample")]
    finally:
        await pool2.close()
    assert len(second) == len(set(second))
    assert all(v > floor for v in second)  # nothing acknowledged is delivered again
    assert tail <= set(second)  # what was read but never committed comes again
    assert set(range(1, int(max(second)) + 1)) <= committed | set(second)  # no gap


async def test_commands_reach_the_node_and_are_bounded(node, tmp_path):
    n = node("--interval", "20")
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=CommitClock(),
                            writable=("interval_ms", "output0"))
    try:
        await poll(drv, 2)
        assert await drv.write("output0", 1) == 1
        samples = await poll(drv, 6)
        assert by_metric(samples, "output0")[-1].value == 1
        assert await drv.write("interval_ms", 500) == 500
        with pytest.raises(DeviceError, match="outside"):
            await drv.write("interval_ms", 5)
        with pytest.raises(DeviceError, match="bad_value"):
            await drv.write("output9", 1)  # the node has outputs 0..3
    finally:
        await pool.close()


async def test_node_reboot_starts_a_new_boot_and_is_accepted(node, tmp_path):
    n = node("--interval", "20")
    commits = CommitClock()
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=commits)
    try:
        await poll(drv, 5, commits)
        n.stop()
        n2 = node("--interval", "20", "--retransmit", "200")
        samples = []
        deadline = time.monotonic() + 60  # a new process on a loaded machine: bounded by time, not polls
        while time.monotonic() < deadline:
            try:
                samples += await poll(drv, 1, commits)
            except DeviceError:
                await asyncio.sleep(0.1)  # the pty went away; the bus reopens the link
            if (n2.boot_id & 0x7FFFFFFF) in {s.value for s in by_metric(samples, "boot_id")} \
                    and 1 in {s.value for s in by_metric(samples, "sample")}:
                break
        assert drv.diagnostics()["boot_id"] == f"{n2.boot_id:08x}"
        assert (n2.boot_id & 0x7FFFFFFF) in {s.value for s in by_metric(samples, "boot_id")}
        assert 1 in {s.value for s in by_metric(samples, "sample")}
    finally:
        await pool.close()


async def test_a_node_offline_at_start_is_described_later_and_remembered(node, tmp_path):
    state = tmp_path / "state"
    drv, pool = make_driver(str(tmp_path / "ttyNODE"), state, commits=CommitClock(), describe_timeout=0)
    assert drv.metrics() == []  # nothing known yet, and nothing to ask
    n = node("--interval", "50")
    try:
        deadline = time.monotonic() + 60  # the node process starts and describes itself: bounded by time
        with pytest.raises(DeviceError, match="restart the agent"):
            while time.monotonic() < deadline:
                try:
                    await drv.read()
                except DeviceError as e:
                    if "restart" in str(e):
                        raise
                await asyncio.sleep(0.1)
    finally:
        await pool.close()
    # the next start knows the metrics from the state directory, before the node says a word
    drv2, pool2 = make_driver(str(tmp_path / "ttyNODE"), state, commits=CommitClock(), describe_timeout=0)
    await pool2.close()
    assert [m.name for m in drv2.metrics()] == ["sample", "temperature", "output0", "boot_id"]
    assert n.boot_id
