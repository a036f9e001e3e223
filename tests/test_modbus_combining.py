"""Several devices' polls waiting for one Modbus TCP line go out in one write (agent.bus.modbus_tcp_group),
and each unit keeps what its own group promises: a dead unit among them fails alone, a gateway that
answers only the first request of a write loses no poll, a cancelled poll leaves the write to the
others. Small scripted gateways (tests.test_modbus_pipelining) and the meter simulator; counts of
requests and writes, and what each poll returns, never times."""

from __future__ import annotations

import asyncio
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus import modbus_tcp_group
from agent.bus.mbap import MbapClient
from agent.bus.modbus import ModbusBus
from agent.bus.modbus_config import ModbusTcpLine
from agent.errors import BusUnavailable, DeviceException, DeviceTimeout
from drivers.modbus_meter.sim import start
from tests.chaos.agent_proc import AgentProcess, agent_config, wait_until
from tests.mqtt_helpers import Subscriber
from tests.sim_thread import simulator
from tests.test_modbus_pipelining import (
    BLOCKS,
    EXPECTED,
    FALLBACK,
    _BusyDevice,
    _Gateway,
    _GatewayConn,
    free_port,
    meter_blocks,
    registers,
    tcp_bus,
    warnings,
)

N = len(BLOCKS)
UNITS = (1, 2, 3, 4, 5)
COMBINING_OFF = "no longer sent in one write together"


async def poll_all(bus: ModbusBus, units, blocks=BLOCKS) -> list:
    """Every unit's poll started at once, as pollers due together are (the first finds the line free)."""
    return await asyncio.gather(*(bus.read_register_blocks(u, blocks) for u in units), return_exceptions=True)


async def until(pred, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


def said(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("pipeline", ["auto", True, False])
async def test_polls_waiting_for_the_line_go_out_in_one_write(pipeline, caplog):
    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port, pipeline=pipeline)
    try:
        for _ in range(3):
            assert [registers(g) for g in await poll_all(bus, UNITS)] == [EXPECTED] * len(UNITS)
        if pipeline is False:  # one request at a time, whatever waits
            assert gw.segments == [(u, 1) for u in UNITS for _ in BLOCKS] * 3
        else:  # the first poll alone (the line was free), the four that waited for it in one write
            assert gw.segments == [(1, N), (2, 4 * N)] * 3
        for u in UNITS:
            st = bus.stats()["units"][u]
            assert (st["transactions"], st["timeouts"], st["errors"], st["failures"]) == (3 * N, 0, 0, 0)
        assert warnings(caplog) == [] and said(caplog, COMBINING_OFF) == []
    finally:
        await bus.close()
        server.close()


@pytest.mark.parametrize("dead", [3, 5])
@pytest.mark.parametrize("dead_reply", [None, 11])
async def test_a_dead_unit_in_a_combined_write_fails_alone(dead_reply, dead, caplog):
    """A unit's device is gone behind a gateway that queues requests (silent, or exception 11 after the
    gateway's own timeout). Its neighbours in the same write are answered every cycle; the dead unit fails
    with its own error, and after that failure its polls go one request at a time, on their own."""
    gw = _Gateway(dead=(dead,), hold=0.1, dead_reply=dead_reply)
    server, port = await gw.serve()
    now = [0.0]
    bus = tcp_bus(port, "gw", clock=now, timeout=2.0)
    try:
        for _ in range(3):
            got = await poll_all(bus, UNITS)
            for u, g in zip(UNITS, got, strict=True):
                if u == dead:
                    assert isinstance(g, DeviceTimeout if dead_reply is None else DeviceException), g
                    assert f"unit {dead} on 'gw'" in str(g)
                else:
                    assert registers(g) == EXPECTED, (u, g)
            now[0] += 3600  # past unit 3's backoff: it is polled each cycle
        assert gw.segments[:2] == [(1, N), (2, 4 * N)]  # the dead unit went out with the others once
        # then one request per poll. In the middle of the write the gateway went past it (answered unit 4):
        # its silence or exception 11 is its own. Last, it is read again once, one request at a time, in
        # the same hold (in a write with others, silence or 11 may be the gateway's refusal of the write)
        assert gw.requests[dead] == N + (0 if dead == 3 else 1) + 2
        for u in set(UNITS) - {dead}:
            st = bus.stats()["units"][u]
            assert (st["transactions"], st["timeouts"], st["failures"]) == (3 * N, 0, 0), u
        assert warnings(caplog) == [] and said(caplog, COMBINING_OFF) == []  # nothing learnt
    finally:
        await bus.close()
        server.close()


async def served_unit(h, unit: int, blocks) -> list[bytes]:
    return [struct.pack(f">{n}H", *await h.server.async_getValues(unit, fc, a, n)) for fc, a, n in blocks]


async def test_a_device_answering_only_the_first_request_of_a_write_loses_no_poll(caplog):
    """The meter simulator answering the first request of a segment only: the combined write is answered
    for one request; every unit is read again one at a time in the same hold and its poll succeeds. The
    endpoint is learnt as before (a unit's own group failing twice in a row), said once."""
    port = free_port()
    units = (1, 2, 3, 4)
    h = await start(units={u: "sdm630" for u in units}, update_interval=None, tcp=f"127.0.0.1:{port}",
                    pipelining="first")
    bus = tcp_bus(port)
    blocks = meter_blocks(h)
    try:
        for cycle in range(3):
            got = await poll_all(bus, units, blocks)
            assert got == [await served_unit(h, u, blocks) for u in units]
            if cycle == 0:  # the three that waited went out in one write
                assert h.server.most_outstanding == 3 * len(blocks)
                h.server.most_outstanding = 0
        assert len(warnings(caplog)) == 1
        h.server.most_outstanding = 0
        assert await poll_all(bus, units, blocks) == [await served_unit(h, u, blocks) for u in units]
        assert h.server.most_outstanding == 1  # one request at a time from now on
        for u in units:
            st = bus.stats()["units"][u]
            assert (st["failures"], st["errors"], st["exceptions"], st["skipped"]) == (0, 0, 0, 0), u
    finally:
        await bus.close()
        await h.stop()


async def test_an_endpoint_taking_one_polls_requests_but_not_several_units_is_learnt_apart(caplog):
    """A gateway that queues a poll's three requests but drops what a write carries beyond them: the
    combined writes fail (each unit read again, every poll answered); the second time in a row units stop
    being combined there, and each unit's own group still goes out together."""
    gw = _Gateway(max_queue=N)
    server, port = await gw.serve()
    bus = tcp_bus(port)
    units = (1, 2, 3, 4)
    try:
        for _ in range(4):
            assert [registers(g) for g in await poll_all(bus, units)] == [EXPECTED] * len(units)
        rereads = [(u, 1) for u in (3, 4) for _ in BLOCKS]  # unit 2's were answered
        assert gw.segments == ([(1, N), (2, 3 * N), *rereads] * 2) + [(u, N) for u in units] * 2
        assert len(said(caplog, COMBINING_OFF)) == 1 and warnings(caplog) == []
        for u in units:
            assert bus.stats()["units"][u]["failures"] == 0
    finally:
        await bus.close()
        server.close()


async def test_a_cancelled_poll_leaves_the_combined_write_to_the_others(caplog):
    gw = _Gateway(slow=(2,))
    gw.gate = asyncio.Event()  # unit 2's replies wait for it: the write stays in flight
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        polls = [asyncio.create_task(bus.read_register_blocks(u, BLOCKS)) for u in (1, 2, 3, 4)]
        await until(lambda: len(gw.segments) == 2)
        assert gw.segments == [(1, N), (2, 3 * N)]
        polls[2].cancel()  # unit 3's deadline, while its requests are out with units 2 and 4
        await asyncio.sleep(0)
        gw.gate.set()
        got = await asyncio.gather(*polls, return_exceptions=True)
        assert isinstance(got[2], asyncio.CancelledError)
        assert [registers(got[k]) for k in (0, 1, 3)] == [EXPECTED] * 3
        # the cancelled unit's next poll goes one request at a time, as after any cancelled poll, and nothing is learnt
        assert registers(await bus.read_register_blocks(3, BLOCKS)) == EXPECTED
        assert gw.segments[2:] == [(3, 1)] * N
        assert bus.stats()["line"] == "meters" and bus.stats()["opens"] == 1  # the connection was kept
        assert warnings(caplog) == [] and said(caplog, COMBINING_OFF) == []
    finally:
        await bus.close()
        server.close()


async def test_a_combined_write_nobody_waits_for_any_more_is_given_up(caplog):
    """Every poll of a write in flight cancelled (shutdown): its reads are cancelled at once, as a single
    poll's are (nothing counted as unanswered, nothing learnt), and the line serves the next poll."""
    gw = _Gateway(slow=(2,))
    gw.gate = asyncio.Event()  # never set: unit 2's replies never come
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        polls = [asyncio.create_task(bus.read_register_blocks(u, BLOCKS)) for u in (1, 2, 3)]
        await until(lambda: len(gw.segments) == 2)
        assert gw.segments == [(1, N), (2, 2 * N)]
        for p in polls[1:]:
            p.cancel()
        got = await asyncio.gather(*polls, return_exceptions=True)
        assert registers(got[0]) == EXPECTED and all(isinstance(g, asyncio.CancelledError) for g in got[1:])
        assert registers(await bus.read_register_blocks(4, BLOCKS)) == EXPECTED
        for u in (2, 3):
            assert bus.stats()["units"][u]["timeouts"] == 0
        assert modbus_tcp_group._COMBINE_FAILED_ONCE == set() and warnings(caplog) == []
    finally:
        await bus.close()
        server.close()


async def test_a_garbled_reply_in_a_combined_write_is_that_units_error_not_a_sign(caplog):
    gw = _Gateway(slow=(1,))
    gw.gate = asyncio.Event()  # unit 1's replies wait for it: the others wait for the line meanwhile
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        polls = [asyncio.create_task(bus.read_register_blocks(u, BLOCKS)) for u in (1, 2, 3, 4)]
        await until(lambda: len(gw.segments) == 1)
        gw.garble_next = True  # the reply to the second request of the next write: unit 2's second block
        gw.gate.set()
        assert [registers(g) for g in await asyncio.gather(*polls)] == [EXPECTED] * 4
        assert gw.segments == [(1, N), (2, 3 * N)] + [(2, 1)] * N  # unit 2 read again, one at a time
        u2 = bus.stats()["units"][2]
        assert (u2["errors"], u2["timeouts"], u2["failures"]) == (1, 0, 0)
        assert modbus_tcp_group._COMBINE_FAILED_ONCE == set() and warnings(caplog) == []
    finally:
        await bus.close()
        server.close()


async def test_combined_writes_stay_within_one_tcp_segment_on_any_path():
    """A write that a device reads a segment at a time must hold whole frames on any path with an MTU of
    1280 or more (IPv6's minimum; LTE, PPPoE, VPN): at most 1280 - 40 - 20 - 12 = 1208 bytes."""
    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)
    writes: list[int] = []

    def trace(sending: bool, data: bytes) -> bytes:
        if sending:
            writes.append(len(data))
        return data

    bus._trace = trace  # type: ignore[method-assign] - the client's packet hook: each write's size
    units = range(1, 31)
    try:
        assert [registers(g) for g in await poll_all(bus, units)] == [EXPECTED] * len(units)
        assert sum(writes) == 12 * 30 * N and max(writes) <= 1280 - 40 - 20 - 12 and max(writes) % 12 == 0, writes
        assert len(gw.requests) == 30 and bus.stats()["opens"] == 1
    finally:
        await bus.close()
        server.close()


async def test_a_unit_the_gateway_went_past_restarts_the_connection():
    """Unit 3's device is gone behind a gateway (silent); the gateway answered unit 4 after it. The
    connection is restarted after unit 3's timeout, as after a unit's own group, so the next write does not
    queue behind what the gateway still holds for it."""
    gw = _Gateway(dead=(3,), hold=0.05)
    server, port = await gw.serve()
    bus = ModbusBus("gw", ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port, timeout=1.0))
    try:
        got = await poll_all(bus, UNITS)
        assert isinstance(got[2], DeviceTimeout) and [registers(got[k]) for k in (0, 1, 3, 4)] == [EXPECTED] * 4
        assert bus.stats()["connected"] is False and bus.stats()["drops"] == 0
    finally:
        await bus.close()
        server.close()



@pytest.mark.parametrize("code", [6, 10, 11])
async def test_busy_or_gateway_exceptions_to_a_combined_write_fail_no_poll(code, caplog, monkeypatch):
    """A device answering the first request of a segment and exception 6 (or a gateway's 10/11) to the
    rest: each unit of a combined write is read again one at a time and answered. The first unit's own
    group fails so twice in a row: the endpoint is learnt as before, and said once."""
    monkeypatch.setattr(_BusyDevice, "code", code)
    monkeypatch.setattr(_BusyDevice, "together", 0)
    server = await asyncio.get_running_loop().create_server(_BusyDevice, "127.0.0.1", 0)
    bus = tcp_bus(server.sockets[0].getsockname()[1])
    try:
        for _ in range(3):
            assert [registers(g) for g in await poll_all(bus, UNITS)] == [EXPECTED] * len(UNITS)
        # unit 1's group and the others' combined write, then unit 1's group again (learnt)
        assert _BusyDevice.together == 3
        assert len(warnings(caplog)) == 1 and f"exception {code}" in warnings(caplog)[0]
        for u in UNITS:
            assert bus.stats()["units"][u]["failures"] == 0
    finally:
        await bus.close()
        server.close()


def test_running_agent_with_meters_behind_one_gateway_answering_one_request_at_a_time(tmp_path: Path, mosquitto):
    """Four meters on one Modbus TCP line to a device that answers the first request of a write only: the
    polls that waited while the first group failed went out in one write, were read again, and no poll of
    any meter fails."""
    port = free_port()
    units = (1, 2, 3, 4)
    extra = f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 3\n\n' + "".join(
        f'[[devices]]\nname = "meter{u}"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "meters"\nunit = {u}\n'
        f'poll_interval = 0.2\ntimeout = 20\n\n' for u in units)
    cfg = agent_config(tmp_path, mosquitto, {}, extra=extra)
    sub = Subscriber(mosquitto, ["edge/gw-chaos/#"]).start()
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", units={u: "sdm630" for u in units}, update_interval=None,
                   pipelining="first") as h:
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        try:
            def health() -> dict:
                bodies = [m.json() for m in sub.snapshot() if m.topic.endswith("/health")]
                return bodies[-1]["devices"] if bodies else {}

            assert wait_until(lambda: all(health().get(f"meter{u}", {}).get("polls_ok", 0) >= 10 for u in units),
                              120), agent.log_tail()
            assert [health()[f"meter{u}"]["polls_failed"] for u in units] == [0] * len(units), agent.log_tail()
            assert h.server.most_outstanding > 4  # the polls that waited went out in one write
            log = agent.log_tail(200_000)
            assert len([line for line in log.splitlines() if FALLBACK in line]) == 1, log
            assert "Traceback" not in log, log
        finally:
            agent.terminate()
            sub.stop()
        assert "Traceback" not in agent.log_tail(200_000)


class _SerialGateway(asyncio.Protocol):
    """A gateway with a serial line behind it: requests queued, answered one after another, ``PACE`` s
    each. ``before_answer`` is called before each answer, ``answered`` counts them, ``queued`` what waits."""

    PACE = 0.02
    answered = 0
    before_answer = None
    conns: list[_SerialGateway] = []

    def connection_made(self, transport) -> None:
        self.t, self.queue = transport, asyncio.Queue()
        self.worker = asyncio.get_running_loop().create_task(self._work())
        _SerialGateway.conns.append(self)

    def connection_lost(self, exc) -> None:
        self.worker.cancel()
        _SerialGateway.conns.remove(self)

    def data_received(self, data: bytes) -> None:
        for i in range(0, len(data) - 11, 12):
            self.queue.put_nowait(struct.unpack_from(">HHHBBHH", data, i))

    async def _work(self) -> None:
        while True:
            tid, _, _, unit, fc, a, c = await self.queue.get()
            await asyncio.sleep(self.PACE)
            if _SerialGateway.before_answer is not None:
                _SerialGateway.before_answer()
            _SerialGateway.answered += 1
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * c, unit, fc, 2 * c) + struct.pack(f">{c}H", *range(a, a + c)))


async def test_each_unit_of_a_combined_write_completes_with_its_own_replies_on_a_slow_line(monkeypatch):
    """Eight meters due together behind a gateway answering one request at a time; each poll's deadline
    ends when the gateway has answered five meters' requests (what fits one after another). Each unit of a
    combined write is done as its own replies are in, so every cycle five polls succeed, as one at a time
    would; none is held until the whole write is answered."""
    monkeypatch.setattr(_SerialGateway, "conns", [])
    server = await asyncio.get_running_loop().create_server(_SerialGateway, "127.0.0.1", 0)
    bus = tcp_bus(server.sockets[0].getsockname()[1], timeout=30.0)
    units = range(1, 9)
    running: dict[int, asyncio.Timeout] = {}
    budget = 5 * N

    def deadline() -> None:  # the deadline of every poll still running ends when the budget is spent
        if _SerialGateway.answered == budget:
            for cm in running.values():
                cm.reschedule(asyncio.get_running_loop().time())

    async def poll(u: int) -> bool:
        try:
            async with asyncio.timeout(None) as cm:
                running[u] = cm
                got = await bus.read_register_blocks(u, BLOCKS)
            return registers(got) == EXPECTED
        except (TimeoutError, DeviceTimeout):
            return False
        finally:
            running.pop(u, None)

    monkeypatch.setattr(_SerialGateway, "before_answer", staticmethod(deadline))
    monkeypatch.setattr(_SerialGateway, "answered", 0)
    try:
        ok = []
        for _ in range(4):
            await until(lambda: all(c.queue.empty() for c in _SerialGateway.conns))
            _SerialGateway.answered = 0
            ok.append(sum(await asyncio.gather(*(poll(u) for u in units))))
        assert ok == [5] * 4
    finally:
        await bus.close()
        server.close()


@pytest.mark.parametrize("interval", [3600, 0.5])
async def test_an_endpoint_ignoring_a_combined_write_is_learnt_and_fails_no_unit_for_ever(interval, caplog):
    """A gateway that takes one poll's three requests but ignores a segment of more than four (a small
    receive buffer): a combined write is met by silence. Its first unit fails as a silent unit would and
    answers alone next time (after its backoff, when polls come sooner); the second time so, units stop
    being combined there (one warning naming the unit) and every poll succeeds from then on. Only a unit
    that failed counts timeouts."""
    gw = _Gateway(drop_over=4)
    server, port = await gw.serve()
    now = [0.0]
    bus = tcp_bus(port, "gw", clock=now, timeout=0.5)
    failed: list[list[int]] = []
    try:
        for _ in range(8):
            got = await poll_all(bus, UNITS)
            failed.append([u for u, g in zip(UNITS, got, strict=True) if not isinstance(g, list)])
            assert all(isinstance(g, (list, DeviceTimeout)) for g in got), got
            now[0] += interval  # the poll interval: past any unit's backoff, or not (1 s at first)
        if interval > 1:
            assert sum(map(len, failed)) <= 2 and failed[3:] == [[]] * 5, failed
        else:  # a unit skipped while backed off tells nothing: learnt when it answers alone
            assert failed[5:] == [[]] * 3, failed
        off = said(caplog, COMBINING_OFF)
        assert len(off) == 1 and "unit " in off[0], off
        for u in UNITS:
            st = bus.stats()["units"][u]
            assert st["timeouts"] == (N if st["skipped"] or any(u in f for f in failed) else 0), (u, st)
    finally:
        await bus.close()
        server.close()


async def test_a_bug_serving_a_combined_write_is_the_polls_error_not_a_line_outage(monkeypatch):
    """An unforeseen error while serving waiting polls fails them with it (a driver error, logged as
    such), not as BusUnavailable (the poller would take it for the line being down and close the driver)."""
    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)

    def broken(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(MbapClient, "send_batch", broken)
    try:
        got = await poll_all(bus, UNITS)
        assert registers(got[0]) == EXPECTED  # served alone: the line was free
        for g in got[1:]:
            assert isinstance(g, RuntimeError) and not isinstance(g, BusUnavailable), g
            assert "ZeroDivisionError: a bug" in str(g) and isinstance(g.__cause__, ZeroDivisionError)
    finally:
        await bus.close()
        server.close()


async def test_garbage_to_a_combined_write_is_one_error_and_every_unit_is_read_again(caplog):
    """Bytes that are not Modbus TCP fail every request outstanding: one error (one sender), not one per
    unit of the write; each unit is read again alone and answered."""
    gw = _Gateway(slow=(1,))
    gw.gate = asyncio.Event()  # unit 1's replies wait for it: the others wait for the line meanwhile
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        polls = [asyncio.create_task(bus.read_register_blocks(u, BLOCKS)) for u in UNITS]
        await until(lambda: len(gw.segments) == 1)
        gw.junk_next = True
        gw.gate.set()
        assert [registers(g) for g in await asyncio.gather(*polls)] == [EXPECTED] * len(UNITS)
        units = bus.stats()["units"]
        assert sum(units[u]["errors"] for u in UNITS) == 1 and all(units[u]["failures"] == 0 for u in UNITS)
    finally:
        await bus.close()
        server.close()


class _PacedGateway(_Gateway):
    """A gateway answering each request of a write with its own segment, one event-loop turn apart (as a
    real gateway's replies trickle in)."""

    async def serve(self) -> tuple[asyncio.Server, int]:
        server = await asyncio.get_running_loop().create_server(lambda: _PacedConn(self), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]


class _PacedConn(_GatewayConn):
    async def _work(self) -> None:
        while True:
            (tid, _, _, unit, fc, address, count), _ = await self.queue.get()
            regs = struct.pack(f">{count}H", *range(address, address + count))
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * count, unit, fc, 2 * count) + regs)
            await asyncio.sleep(0)


async def test_a_combined_writes_replies_are_read_together_not_one_wake_up_each(monkeypatch):
    """Four meters' polls in one write, each of its 12 replies its own segment: once the connection has
    learnt how long a write's replies take, they are read in a few reads instead of one or two each,
    and every poll still gets its own registers."""
    reads: list[int] = []  # the client's reads of reply bytes while a combined write is outstanding, per write
    received = MbapClient._received

    def counting(self, data: bytes) -> None:
        if self._batch is not None:
            reads[-1] += 1
        received(self, data)

    monkeypatch.setattr(MbapClient, "_received", counting)
    gw = _PacedGateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        for _ in range(12):
            reads.append(0)
            assert [registers(g) for g in await poll_all(bus, UNITS)] == [EXPECTED] * len(UNITS)
    finally:
        await bus.close()
        server.close()
    assert gw.segments == [(1, N), (2, 4 * N)] * 12
    assert reads[0] >= 3  # nothing learnt yet: read as they come (6 here; fewer when the kernel bunches them)
    assert sum(reads[2:]) <= 2 * len(reads[2:]), reads  # learnt: a read or two a write


def _answering_device(answered: threading.Event) -> tuple[int, object]:
    """A device in a thread of its own (outside the event loop, as a real one): every request answered at
    once, each reply its own segment; ``answered`` set after each write's replies are sent."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()

    def serve() -> None:
        while True:
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := s.recv(4096):
                for i in range(0, len(data), 12):
                    tid, _, _, unit, fc, _, cnt = struct.unpack_from(">HHHBBHH", data, i)
                    s.sendall(struct.pack(">HHHBBB", tid, 0, 3 + 2 * cnt, unit, fc, 2 * cnt) + bytes(2 * cnt))
                answered.set()
            s.close()

    threading.Thread(target=serve, daemon=True).start()
    return lsock.getsockname()[1], lsock


async def test_replies_in_during_a_hold_are_read_when_the_loop_was_too_busy_to_resume_in_time():
    """The event loop blocked past the request timeout right after a held write (a long GC, a page
    refresh on a slow Pi): the replies that came meanwhile are read, not failed as timeouts."""
    import time

    answered = threading.Event()
    port, lsock = _answering_device(answered)

    def busy() -> None:  # the loop blocked until the replies are in its socket, and past the timeout
        t0 = time.monotonic()
        assert answered.wait(60)
        time.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))

    try:
        for learnt in (None, 0.005):  # not held, held: the same outcome
            answered.clear()
            c = MbapClient("127.0.0.1", port, timeout=0.2)
            assert await c.connect()
            c.replies_time = learnt
            futs = c.send_batch([(1, 3, 0, 2), (2, 3, 0, 2)], [1, 1], lambda k: None)
            asyncio.get_running_loop().call_soon(busy)
            await c.wait_batch()
            assert [f.exception() for f in futs] == [None, None], learnt
            c.end_batch()
            c.close()
    finally:
        lsock.close()


def test_one_slow_write_moves_the_learnt_hold_a_little_not_to_its_cap():
    """One slow write (a device busy for a moment, an exception after a gateway's serial timeout) moves
    the hold a quarter of the way to the cap at most, and holds that find every reply in bring it down."""
    from agent.bus import mbap

    c = MbapClient("127.0.0.1", 1, timeout=3.0)
    g = mbap._Group(0.0, None, 1)  # type: ignore[arg-type]
    g.written, g.held = 0.0, mbap._READING
    c._learn(g, 0.002)  # a first write's replies took 2 ms
    assert c.replies_time == pytest.approx(0.002)
    g.held = mbap._READ  # held, not all in at the first read: this write took 1 s
    c._learn(g, 1.0)
    assert c.replies_time == pytest.approx(0.002 + (mbap.HOLD_MAX - 0.002) / 4)  # 6.5 ms, not 1 s or the cap
    g.held = mbap._RESUMED
    for _ in range(12):
        c._learn(g, 0.0)
    assert c.replies_time < 0.002


async def test_devices_of_one_line_and_interval_go_out_in_one_write_each_cycle_from_the_first(caplog):
    """Pollers of the devices on one line with one interval (a shared cadence) fall due together: the
    first to start no longer goes out alone before the others (one round trip, one wake-up of the agent
    more each cycle), all five units go in one write; a device polled on its own still goes out at once."""
    from agent.config.schema import DeviceConfig
    from agent.model import Batch, MetricSpec
    from agent.scheduler import Cadence, Poller

    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)

    class Unit:
        def __init__(self, unit: int):
            self.unit, self.reads = unit, 0

        def metrics(self):
            return [MetricSpec("r", "")]

        async def open(self):
            pass

        async def read(self):
            assert registers(await bus.read_register_blocks(self.unit, BLOCKS)) == EXPECTED
            self.reads += 1
            return Batch.from_columns(np.array([0]), np.array([1_700_000_000_000]), np.array([1.0]))

        async def close(self):
            pass

    def poller(unit: int, cadence: Cadence | None) -> Poller:
        return Poller(DeviceConfig(name=f"u{unit}", type="x", poll_interval=0.3, timeout=5.0, jitter=0.0),
                      Unit(unit), lambda device, batch: None, cadence=cadence)

    shared = Cadence(0.3, 0.0)
    try:
        for pollers, units in (([poller(u, shared) for u in UNITS], len(UNITS)), ([poller(1, None)], 1)):
            gw.segments.clear()
            tasks = [asyncio.create_task(p.run()) for p in pollers]
            await until(lambda pollers=pollers: all(p.driver.reads >= 5 for p in pollers))
            for p in pollers:
                p.stop()
            await asyncio.gather(*tasks)
            # (after start the others' first slot is the grid's second: the first cycles differ)
            assert [n for _, n in gw.segments[-3:]] == [units * N] * 3, gw.segments
        assert warnings(caplog) == [] and said(caplog, COMBINING_OFF) == []
    finally:
        await bus.close()
        server.close()
