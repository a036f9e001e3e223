"""The `serial` line kind over real ptys: framing, counters, lock, loss and reopen with backoff."""

from __future__ import annotations

import asyncio
import logging
import os
import tty

import pytest

from agent.bus.serial_port import SerialBus, SerialLineConfig
from agent.errors import BusUnavailable, DeviceTimeout
from drivers.mhz19 import codec


@pytest.fixture
def pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def bus_on(path: str, **kw) -> SerialBus:
    return SerialBus("l1", SerialLineConfig(type="serial", port=path, **kw))


def read_master(master: int) -> bytes:
    try:
        return os.read(master, 4096)
    except BlockingIOError:
        return b""


async def test_garbage_is_skipped_and_counted(pty):
    master, path = pty
    bus = bus_on(path)
    await bus.open()
    reply = codec.encode_reading(codec.Mhz19Reading(700, 20, 0))

    async def device():
        await asyncio.sleep(0.05)
        os.write(master, b"\x00\x13junk\xff\x00" + reply[:4])
        await asyncio.sleep(0.05)
        os.write(master, reply[4:])

    task = asyncio.create_task(device())
    frame = await bus.transact(codec.READ, read_until=codec.scan, timeout=30)
    await task
    assert frame == reply
    assert read_master(master) == codec.READ
    s = bus.stats()
    assert s["state"] == "up" and s["frames_ok"] == 1 and s["resyncs"] >= 1 and s["bytes_discarded"] == 8
    await bus.close()
    assert bus.state == "closed"


async def test_waiting_never_blocks_the_loop_and_times_out_typed(pty):
    master, path = pty
    bus = bus_on(path)
    reply = codec.encode_reading(codec.Mhz19Reading(612, 20, 0))
    ticks = 0

    async def ticker():  # the device answers only after the loop ticked ten times while the bus waited
        nonlocal ticks
        while ticks < 10:
            await asyncio.sleep(0.01)
            ticks += 1
        os.write(master, reply)

    t = asyncio.create_task(ticker())
    assert await bus.transact(codec.READ, read_until=codec.scan, timeout=60) == reply
    await t
    assert ticks == 10
    with pytest.raises(DeviceTimeout, match="l1: no valid frame within 0.3s"):
        await bus.transact(codec.READ, read_until=codec.scan, timeout=0.3)
    assert bus.counters["timeouts"] == 1
    await bus.close()


async def test_concurrent_transactions_are_serialised(pty):
    master, path = pty
    bus = bus_on(path)
    await bus.open()
    seen: list[bytes] = []

    async def device():  # answer each request only after it arrived whole
        buf = bytearray()
        while len(seen) < 3:
            await asyncio.sleep(0.01)
            buf += read_master(master)
            while len(buf) >= 9:
                req, buf[:] = bytes(buf[:9]), buf[9:]
                seen.append(req)
                os.write(master, codec.encode_reading(codec.Mhz19Reading(400 + len(seen), 20, 0)))

    dev = asyncio.create_task(device())
    frames = await asyncio.gather(*[bus.transact(codec.READ, read_until=codec.scan, timeout=30) for _ in range(3)])
    await dev
    assert sorted(codec.decode_reading(f).co2_ppm for f in frames) == [401, 402, 403]
    assert seen == [codec.READ] * 3  # requests never interleaved on the wire
    await bus.close()


async def test_missing_port_is_bus_unavailable_with_backoff(tmp_path, caplog):
    bus = bus_on(str(tmp_path / "ttyUSB9"), reopen_min=5, reopen_max=60)
    with caplog.at_level(logging.WARNING, "edge_agent.bus.serial"):
        with pytest.raises(BusUnavailable, match="ttyUSB9"):
            await bus.transact(codec.READ, read_until=codec.scan, timeout=1)
        with pytest.raises(BusUnavailable, match="next reopen in"):
            await bus.transact(codec.READ, read_until=codec.scan, timeout=1)
    assert bus.state == "down" and bus.counters["downs"] == 1 and bus.counters["open_failures"] == 1
    assert len([r for r in caplog.records if "is down" in r.message]) == 1


async def test_port_lost_mid_wait_raises_and_reopens_on_a_stable_link(tmp_path):
    link = tmp_path / "ttyUSB0"
    m1, s1 = os.openpty()
    tty.setraw(s1)
    link.symlink_to(os.ttyname(s1))
    bus = bus_on(str(link), reopen_min=0.05)
    await bus.open()
    asyncio.get_running_loop().call_later(0.1, lambda: (os.close(m1), os.close(s1)))
    with pytest.raises(BusUnavailable, match="lost"):
        await bus.transact(codec.READ, read_until=codec.scan, timeout=60)
    assert bus.state == "down"
    # replug: a new pty behind the same stable name
    m2, s2 = os.openpty()
    tty.setraw(s2)
    os.set_blocking(m2, False)
    link.unlink()
    link.symlink_to(os.ttyname(s2))
    await asyncio.sleep(0.1)
    reply = codec.encode_reading(codec.Mhz19Reading(555, 20, 0))
    asyncio.get_running_loop().call_later(0.05, os.write, m2, reply)
    assert await bus.transact(codec.READ, read_until=codec.scan, timeout=30) == reply
    assert bus.state == "up" and bus.counters["downs"] == 1 and bus.counters["ups"] == 2
    await bus.close()
    os.close(m2)
    os.close(s2)
