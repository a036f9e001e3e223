"""A poll's register blocks on a modbus_tcp line: sent one after another from the reply callback
(MbapClient.read_chain), against the real pymodbus server and a scripted device for the faults."""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np
import pytest

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus.mbap import MbapClient, _Protocol
from agent.bus.modbus import ModbusBus
from agent.bus.modbus_config import ModbusTcpLine
from agent.contract.modbus_values import decode
from agent.errors import DeviceException, DeviceTimeout
from drivers.modbus_meter.codec import load_profile
from drivers.modbus_meter.planner import Item, plan
from drivers.modbus_meter.sim import start
from tests.test_modbus_bus import free_port
from tests.virtual_time import run_virtual


def tcp_bus(port: int, **kw) -> ModbusBus:
    """A bus sending one request at a time (``pipeline = false``: what this file is about; requests sent
    together are tests/test_modbus_pipelining.py's), with a timeout long enough for a loaded machine."""
    return ModbusBus("tcp", ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port,
                                          **{"timeout": 10.0, "pipeline": False, **kw}))


async def test_a_polls_blocks_from_the_pymodbus_server_arrive_intact_and_counted():
    regs = load_profile("sdm630").registers
    blocks = [(r.fc, r.address, r.count) for r in plan([Item(i, r.fc, r.address, r.count) for i, r in enumerate(regs)],
                                                       max_registers=load_profile("sdm630").profile.max_registers,
                                                       max_gap=load_profile("sdm630").profile.max_gap)]
    assert len(blocks) >= 3
    port = free_port()
    h = await start(units={1: "sdm630", 2: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}")
    bus = tcp_bus(port)
    try:
        for _ in range(3):  # polls of two units interleaved on one connection
            both = await asyncio.gather(*[bus.read_register_blocks(u, blocks) for u in (1, 2)])
            for unit, got in zip((1, 2), both, strict=True):
                assert [len(b) for b in got] == [2 * n for _, _, n in blocks]
                at = {a: b for (_, a, _), b in zip(blocks, got, strict=True)}
                for r in regs:
                    start_addr = max(a for a in at if a <= r.address)
                    off = 2 * (r.address - start_addr)
                    words = np.frombuffer(at[start_addr][off:off + 2 * r.count], ">u2").tolist()
                    assert r.value(words) == pytest.approx(h.values_of(unit)[r.name], rel=1e-6), r.name
        u = bus.stats()["units"][1]
        assert u["transactions"] == 3 * len(blocks) and u["timeouts"] == u["errors"] == 0
        assert u["bytes_rx"] == 3 * sum(5 + 2 * n for _, _, n in blocks)
        assert u["bytes_tx"] == 3 * len(blocks) * 12  # every request of every poll (MBAP: 12 bytes each)
    finally:
        await bus.close()
        await h.stop()


class _ScriptedDevice(asyncio.Protocol):
    """Answers register reads one at a time (register i holds i) after ``delay`` s; ``faults`` maps a
    request's ordinal (0-based, over the connection) to "garbage", "silent" or an exception code."""

    log: list[int] = []
    faults: dict[int, str | int] = {}
    delay = 0.0

    def connection_made(self, transport) -> None:
        self.t, self.buf = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 12:
            req = struct.unpack_from(">HHHBBHH", self.buf)
            self.buf = self.buf[12:]
            n = len(self.log)
            self.log.append(req[5])
            asyncio.get_running_loop().call_later(self.delay, self._answer, req, self.faults.get(n))

    def _answer(self, req, fault) -> None:
        tid, _, _, unit, fc, address, count = req
        if fault == "silent":
            return
        if fault == "garbage":  # a byte count that does not match the data
            self.t.write(struct.pack(">HHHBBB", tid, 0, 5, unit, fc, 9) + b"\x00\x01")
        elif isinstance(fault, int):
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3, unit, fc | 0x80, fault))
        else:
            regs = struct.pack(f">{count}H", *range(address, address + count))
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * count, unit, fc, 2 * count) + regs)


BLOCKS = [(4, 0, 10), (3, 100, 3), (4, 200, 5)]


async def _scripted(faults: dict[int, str | int], delay: float = 0.0):
    _ScriptedDevice.log, _ScriptedDevice.faults, _ScriptedDevice.delay = [], faults, delay
    server = await asyncio.get_running_loop().create_server(_ScriptedDevice, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _words(got: list[bytes]) -> list[list[int]]:
    return [list(struct.unpack(f">{len(b) // 2}H", b)) for b in got]


async def test_a_garbled_reply_mid_poll_is_retried_from_that_block_only():
    server, port = await _scripted({1: "garbage"})
    bus = tcp_bus(port, retries=1)
    try:
        got = await bus.read_register_blocks(7, BLOCKS)
        assert _words(got) == [list(range(a, a + n)) for _, a, n in BLOCKS]
        assert _ScriptedDevice.log == [0, 100, 100, 200]  # the first block is not read twice
        u = bus.stats()["units"][7]
        assert u["transactions"] == 4 and u["failures"] == 0
        assert u["bytes_tx"] == 4 * 12  # the retry's two requests too
    finally:
        await bus.close()
        server.close()


async def test_silence_mid_poll_is_a_timeout_not_a_garbled_reply():
    server, port = await _scripted({1: "silent"})
    bus = tcp_bus(port, timeout=2.0, retries=1)  # the silent block costs it; the first answers at once
    try:
        with pytest.raises(DeviceTimeout):
            await bus.read_register_blocks(7, BLOCKS)
        assert _ScriptedDevice.log == [0, 100]  # silence is not retried; the third block is not asked
        u = bus.stats()["units"][7]
        assert (u["transactions"], u["timeouts"], u["errors"]) == (2, 1, 0)
    finally:
        await bus.close()
        server.close()


async def test_an_exception_reply_mid_poll_is_a_device_exception():
    server, port = await _scripted({2: 2})
    bus = tcp_bus(port)
    try:
        with pytest.raises(DeviceException) as ei:
            await bus.read_register_blocks(7, BLOCKS)
        assert ei.value.code == 2
        u = bus.stats()["units"][7]
        assert (u["transactions"], u["exceptions"], u["bytes_tx"]) == (3, 1, 3 * 12)  # all three requests went out
        _ScriptedDevice.faults = {}
        assert _words(await bus.read_register_blocks(7, BLOCKS))[2] == list(range(200, 205))
    finally:
        await bus.close()
        server.close()


def test_each_block_gets_the_whole_timeout():
    """On virtual time (tests/virtual_time.py), over a socket pair: every reply takes 60 % of the
    timeout, so the poll takes longer than one timeout, yet none expires."""

    async def main() -> tuple[list[bytes], int, float]:
        _ScriptedDevice.log, _ScriptedDevice.faults, _ScriptedDevice.delay = [], {}, 6.0
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        device, _ = await loop.connect_accepted_socket(_ScriptedDevice, theirs)

        class Paired(MbapClient):
            async def connect(self) -> bool:
                self._transport, _ = await loop.create_connection(lambda: _Protocol(self), sock=ours)
                return True

        bus = ModbusBus("tcp", ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=1, timeout=10.0, pipeline=False),
                        clock=loop.time)
        bus._make_client = lambda: Paired("127.0.0.1", 1, timeout=10.0, trace_packet=bus._trace)
        try:
            t0 = loop.time()
            got = await bus.read_register_blocks(7, BLOCKS)
            return got, bus.stats()["units"][7]["timeouts"], loop.time() - t0
        finally:
            await bus.close()
            device.close()

    got, timeouts, took = run_virtual(main())
    assert _words(got) == [list(range(a, a + n)) for _, a, n in BLOCKS]
    assert timeouts == 0 and took >= 18.0  # loop time: three replies of 6 s each under a 10 s timeout


async def test_the_pymodbus_servers_exception_reply_mid_poll_and_the_next_poll():
    port = free_port()
    h = await start(units={1: "sdm120"}, update_interval=None, tcp=f"127.0.0.1:{port}")
    bus = tcp_bus(port)
    try:  # no holding register at 0x2000 in an SDM120 map: exception 2 (illegal data address)
        with pytest.raises(DeviceException) as ei:
            await bus.read_register_blocks(1, [(4, 0, 2), (3, 0x2000, 1)])
        assert ei.value.code == 2
        regs = await bus.read_register_blocks(1, [(4, 0, 2), (4, 0, 2)])
        assert decode(list(struct.unpack(">2H", regs[0])), "float32") == h.values["voltage"]
    finally:
        await bus.close()
        await h.stop()


class _Steps:
    """Awaits a coroutine, counting the times the awaiting task is resumed into it."""

    def __init__(self, coro):
        self.coro, self.resumed = coro, 0

    def __await__(self):
        it, value = self.coro.__await__(), None
        while True:
            try:
                fut = it.send(value)
            except StopIteration as e:
                return e.value
            value = yield fut
            self.resumed += 1


async def test_the_polling_task_wakes_once_per_poll_not_once_per_block():
    # a count, not a time: the replies arrive in the loop's callbacks however slow the machine is
    server, port = await _scripted({})
    bus = tcp_bus(port)
    try:
        await bus.read_register_blocks(7, BLOCKS)  # connected
        poll = _Steps(bus.read_register_blocks(7, BLOCKS))
        got = await poll
        assert _words(got) == [list(range(a, a + n)) for _, a, n in BLOCKS]
        assert poll.resumed == 1  # the next block's request is sent from the reply's callback
    finally:
        await bus.close()
        server.close()
