"""Devices on one line polled at one interval fall due together: one grid of slots and one jitter draw
per slot (agent.scheduler.Cadence), so a Modbus TCP line sends their polls in one write; devices on other
lines or intervals keep their own draws, and a failing device's backoff is its own. Counted on virtual
time (tests/virtual_time.py) or in requests and writes, never timed."""

from __future__ import annotations

import asyncio
import random

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus.base import BusPool
from agent.config import load_config_text
from agent.config.schema import DeviceConfig
from agent.driver import DriverCatalog, DriverContext
from agent.errors import ProtocolError
from agent.scheduler import Poller, cadences
from tests.test_modbus_pipelining import _Gateway
from tests.test_scheduler import Collector, ScriptedDevice
from tests.virtual_time import LoopClock, run_virtual


class OnLine(DeviceConfig):
    line: str | None = None


def dev(name: str, line: str | None, interval: float = 1.0, jitter: float = 0.2) -> OnLine:
    return OnLine(name=name, type="scripted", line=line, poll_interval=interval, jitter=jitter, timeout=0.5,
                  backoff_max=8.0)


def poll_times(devices: list[OnLine], seconds: float, scripts: dict[str, list] | None = None) -> dict[str, list[float]]:
    """When each device's reads began, over ``seconds`` of virtual time, the pollers built as the agent does."""
    async def main() -> dict[str, list[float]]:
        clock = LoopClock(asyncio.get_running_loop())
        t0 = clock.monotonic()
        times: dict[str, list[float]] = {d.name: [] for d in devices}

        class Timed(ScriptedDevice):
            def __init__(self, name: str):
                super().__init__((scripts or {}).get(name, []))
                self.name = name

            async def read(self):
                times[self.name].append(clock.monotonic() - t0)
                return await super().read()

        cadence = cadences(devices, random.Random(7))
        tasks = [asyncio.create_task(Poller(d, Timed(d.name), Collector(), clock=clock, rng=random.Random(i),
                                            cadence=cadence[d.name]).run()) for i, d in enumerate(devices)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return times

    return run_virtual(main())


def test_devices_on_one_line_and_interval_are_due_together_others_keep_their_own_draw() -> None:
    devices = [dev("a1", "a"), dev("a2", "a"), dev("a3", "a"), dev("b1", "b"), dev("a_slow", "a", interval=2.0),
               dev("direct", None), dev("direct2", None)]
    times = poll_times(devices, 30.5)
    assert times["a1"] == times["a2"] == times["a3"]  # one draw per slot, shared
    for name, got in times.items():  # the rate stays the interval: the k-th poll in [k, k + jitter] intervals
        step = 2.0 if name == "a_slow" else 1.0
        assert len(got) == int(30.5 // step) + 1, name
        assert all(k * step <= t <= (k + 0.2) * step + 1e-6 for k, t in enumerate(got)), (name, got)
    # another line, another interval, no line: drawn apart (slot 0 is the start, the same for all)
    assert times["b1"][1:] != times["a1"][1:]
    assert times["direct"][1:] != times["direct2"][1:] and times["direct"][1:] != times["a1"][1:]
    assert times["a_slow"][1:] != times["a1"][2::2]


def test_a_failing_device_backs_off_alone_and_rejoins_its_lines_slots() -> None:
    devices = [dev("ok1", "a"), dev("ok2", "a"), dev("bad", "a")]
    times = poll_times(devices, 40.5, {"bad": [ProtocolError("garbled")] * 4})
    assert times["ok1"] == times["ok2"] and len(times["ok1"]) == 41  # not dragged by the failing one
    bad = times["bad"]
    # failed at 0, then retried after 1, 2, 4, 8 s (its own backoff), good from the fifth poll on
    assert [round(b - a, 6) for a, b in zip(bad[:4], bad[1:5], strict=True)] == [1.0, 2.0, 4.0, 8.0]
    after = bad[5:]
    assert after and set(after) <= set(times["ok1"])  # back on the line's slots, due with the others
    # never sooner than an interval less the jitter (as any two jittered slots)
    assert all(b - a >= 0.8 - 1e-6 for a, b in zip(bad, bad[1:], strict=False))


async def test_ten_meters_on_one_line_go_out_in_fewer_writes_than_polls(tmp_path) -> None:
    """Ten meters on one Modbus TCP line, polled with the shipped jitter and built as the agent builds
    them: each slot's polls fall due together, the first finds the line free and the others wait and go
    out in one write. Counted at a scripted gateway, against the polls the pollers report."""
    gw = _Gateway()
    server, port = await gw.serve()
    text = f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n' \
           f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n' + "".join(
               f'[[devices]]\nname = "meter{u}"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "meters"\n'
               f'unit = {u}\npoll_interval = 0.5\ntimeout = 20\n' for u in range(1, 11))
    config = load_config_text(text)
    buses = BusPool(config.lines)
    catalog = DriverCatalog.discover()
    ctx = DriverContext(gateway="gw", state_dir=tmp_path, buses=buses)
    cadence = cadences(config.devices)
    pollers = [Poller(d, catalog.get(d.type).factory(d, ctx), Collector(), cadence=cadence[d.name])
               for d in config.devices]
    tasks = [asyncio.create_task(p.run()) for p in pollers]

    async def polls_each(n: int) -> None:
        async with asyncio.timeout(120):
            while min(p.health.polls_ok for p in pollers) < n:
                await asyncio.sleep(0.05)

    try:
        await polls_each(2)  # (the line has learnt how the gateway takes several requests)
        polls0, writes0 = sum(p.health.polls_ok for p in pollers), len(gw.segments)
        await polls_each(8)
        polls, writes = sum(p.health.polls_ok for p in pollers) - polls0, len(gw.segments) - writes0
        assert all(p.health.polls_failed == 0 for p in pollers)
        # two writes a slot (the first poll alone, the nine that waited together) against ten polls
        assert writes * 3 <= polls, (writes, polls, gw.segments[writes0:])
    finally:
        for p in pollers:
            p.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await buses.close()
        server.close()
