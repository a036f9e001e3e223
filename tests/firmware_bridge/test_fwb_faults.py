"""Node faults against the compiled POSIX reference firmware over real ptys: frames of unknown boots,
a reflashed node, clock jumps and slow clocks, a slow sampler, node log text."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import signal
import time
from collections.abc import Callable

import pytest
from fwb_helpers import CommitClock, make_driver
from fwb_proxy import LossyProxy

from agent.errors import DeviceError
from agent.model import Quality
from firmware_bridge import codec as c

pytestmark = pytest.mark.timeout(180)
ESTIMATED = int(Quality.ESTIMATED)


@pytest.fixture
def proxy(tmp_path):
    p = LossyProxy(tmp_path / "ttyGW").start()
    yield p
    p.stop()


async def collect(drv, seconds: float, commits: CommitClock, pause: float = 0.05, *,
                  until: Callable[[list], bool] | None = None, bound: float = 60.0) -> list[tuple[float, object]]:
    """(wall ms when the poll returned, sample) for every sample of every poll: for ``seconds``, then on
    until ``until(samples)`` holds (within ``bound``), so what a test awaits does not hang on how much a
    loaded machine gets done in a fixed time."""
    out: list[tuple[float, object]] = []
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds or (until is not None and not until(out) and elapsed < bound):
        for s in await drv.read():
            out.append((time.time() * 1000, s))
        commits.commit_now()
        await asyncio.sleep(pause)
    return out


def seqs(got) -> list[int]:
    return [int(s.value) for _, s in got if s.metric == "sample"]


def boot_ids(got) -> set[int]:
    return {int(s.value) for _, s in got if s.metric == "boot_id"}


def temperatures(got) -> list[float]:
    return [s.value for _, s in got if s.metric == "temperature"]


async def test_data_of_unknown_boots_never_stops_the_node(node, proxy, tmp_path):
    n = node("--device", proxy.node_path, "--interval", "50", "--retransmit", "200")
    commits = CommitClock()
    drv, pool = make_driver(str(proxy.link), tmp_path / "state", commits=commits)
    rng = random.Random(3)
    try:
        before = seqs(await collect(drv, 1.5, commits, until=seqs))
        for _ in range(10):  # CRC-valid frames of boots the node never had
            boot = rng.randrange(1, 1 << 32)
            proxy.inject(b"\x00" + c.encode(c.Data(boot, rng.randrange(1, 99), rng.randrange(1 << 32), ((0, 1),))))
        after = seqs(await collect(drv, 4.0, commits, until=lambda got: max(seqs(got), default=0) > max(before) + 20))
        d = drv.diagnostics()
    finally:
        await pool.close()
    assert before and after, (before, after)
    assert max(after) > max(before) + 20  # readings keep coming (at 20 per second)
    assert len(after) == len(set(after)) and not set(after) & set(before)
    assert d["unknown_boot_frames"] >= 10 and d["boot_id"] == f"{n.boot_id:08x}"
    assert d["acked_seq"] >= max(after) - 10  # and keep being acknowledged


async def test_reflashed_node_keeps_old_scale_and_announces_its_new_metric(node, proxy, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge_agent.firmware_bridge")
    n1 = node("--device", proxy.node_path, "--interval", "50", "--retransmit", "300")
    commits = CommitClock()
    drv, pool = make_driver(str(proxy.link), tmp_path / "state", commits=commits)
    try:
        got = await collect(drv, 1.0, commits, until=lambda got: boot_ids(got) and temperatures(got))
        await asyncio.sleep(0.4)  # the gateway is busy: old readings wait on the line
        n1.kill()
        n2 = node("--device", proxy.node_path, "--interval", "50", "--retransmit", "300", "--variant", "2")
        await asyncio.sleep(0.3)  # the reflashed node has described itself behind them
        got += await collect(drv, 2.5, commits, until=lambda got: (n2.boot_id & 0x7FFFFFFF) in boot_ids(got)
                             and "humidity" in drv.diagnostics().get("new_metrics", {}))
        d = drv.diagnostics()
    finally:
        await pool.close()
    temps = [s.value for _, s in got if s.metric == "temperature"]
    boots = {int(s.value) for _, s in got if s.metric == "boot_id"}
    assert boots == {n1.boot_id & 0x7FFFFFFF, n2.boot_id & 0x7FFFFFFF}
    assert temps and all(20.0 <= t < 21.0 for t in temps), sorted(set(temps))[:5]  # each boot with its own scale
    assert d["firmware"] == "posix-2.0.0"
    assert d["new_metrics"]["humidity"]["value"] == 45.5 and d["new_metrics"]["humidity"]["unit"] == "%RH"
    assert any("new metric 'humidity'" in r.getMessage() for r in caplog.records)
    assert any("new description" in r.getMessage() and "+humidity" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2], ids=["plus_1h", "minus_2h"])
async def test_a_node_clock_jump_is_never_published_as_good_time(node, tmp_path, sig):
    n = node("--interval", "50", "--retransmit", "300")
    commits = CommitClock()
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=commits)
    try:
        got = await collect(drv, 1.5, commits, until=seqs)
        os.kill(n.proc.pid, sig)

        def resynchronised(after) -> bool:  # the jump seen, and good time again on the newest readings
            good = [int(s.value) for _, s in after if s.metric == "sample" and not s.quality & ESTIMATED]
            return drv.diagnostics()["clock_jumps"] >= 1 and bool(good) and max(good) > max(seqs(after)) - 10
        got += await collect(drv, 3.0, commits, until=resynchronised)
        d = drv.diagnostics()
    finally:
        await pool.close()
    stamped = [(t, s) for t, s in got if s.metric == "sample"]
    good = [(t, s) for t, s in stamped if not s.quality & ESTIMATED]
    # a good reading was taken before the poll that returned it, and not long before
    bad = [(int(s.value), round(t - s.ts_ms)) for t, s in good if not -50 <= t - s.ts_ms <= 3000]
    assert not bad, bad[:5]
    assert d["clock_jumps"] >= 1
    last = max(int(s.value) for _, s in stamped)
    assert any(int(s.value) > last - 10 for _, s in good)  # resynchronised: good time again at once
    ests = [(t, s) for t, s in stamped if s.quality & ESTIMATED]
    assert all(abs(t - s.ts_ms) < 5000 for t, s in ests), [(int(s.value), round(t - s.ts_ms)) for t, s in ests]  # even the flagged ones are put in the right hour


@pytest.mark.parametrize("permille", [990, 900, 250])
async def test_a_slow_node_clock_is_followed(node, tmp_path, permille):
    n = node("--interval", "50", "--retransmit", "300", "--clock-rate", str(permille))
    commits = CommitClock()
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=commits)
    try:
        got = await collect(drv, 6.0, commits)
        d = drv.diagnostics()
    finally:
        await pool.close()
    good = [(t, s) for t, s in got if s.metric == "sample" and not s.quality & ESTIMATED]
    assert len(good) > 0.7 * len([1 for _, s in got if s.metric == "sample"])
    bad = [(int(s.value), round(t - s.ts_ms)) for t, s in good if not -50 <= t - s.ts_ms <= 3000]
    assert not bad, bad[:5]
    # the node samples every 50 of its ms: 50 / rate real ms apart, and that is what is published
    by_seq = sorted((int(s.value), s.ts_ms) for _, s in good)
    steps = sorted((b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(by_seq))
    assert abs(steps[len(steps) // 2] - 50_000 / permille) < 0.05 * 50_000 / permille, steps[len(steps) // 2]
    assert abs(d["clock_rate_ppm"] - (permille - 1000) * 1000) < 20_000 or permille == 990


async def test_a_node_sampling_every_20_s_is_not_marked_down(node, tmp_path):
    n = node("--interval", "20000")
    drv, pool = make_driver(str(n.link), tmp_path / "state", commits=CommitClock())
    try:
        assert drv.config.silent_after == 10.0  # the shipped default
        deadline = time.monotonic() + 14.0
        while time.monotonic() < deadline:  # no DeviceTimeout: the node announced 20 s
            await drv.read()
            await asyncio.sleep(0.5)
        assert drv.silent_limit() >= 40.0
    finally:
        await pool.close()
    assert n.stop()["sampled"] == 0


async def test_node_log_text_is_escaped_and_marked_as_node_text(node, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="edge_agent.firmware_bridge")
    forged = "ok\n2026-12-05 13:00:00 CRITICAL edge_agent.store: outbox deleted\x1b[2J"
    node("--interval", "100", "--log", forged)
    n2 = node("--interval", "100", "--log", "é" * 200, link="ttyNODE2")
    for path in (tmp_path / "ttyNODE", n2.link):  # the node logs right after its description: read at set-up
        drv, pool = make_driver(str(path), tmp_path / f"state-{path.name}", commits=CommitClock())
        try:
            for _ in range(5):
                try:
                    await drv.read()
                except DeviceError:
                    pass
                await asyncio.sleep(0.05)
        finally:
            await pool.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_agent.firmware_bridge.node"]
    forged_line = next(m for m in lines if "ok" in m)
    assert "\n" not in forged_line and "\x1b" not in forged_line
    assert forged_line == 'node 00c0ffee says: "ok\\x0a2026-12-05 13:00:00 CRITICAL edge_agent.store: outbox deleted\\x1b[2J"'
    assert [r.levelno for r in caplog.records if r.name.endswith(".node")][0] == logging.WARNING
    # 400 bytes cut to the 246-byte limit on a character boundary: still valid UTF-8, so it arrives
    assert 'node 00c0ffee says: "' + "é" * 123 + '"' in lines
