"""A poll's register blocks on Modbus TCP: ``pipeline = "auto"`` (the default) sends them together to a
device that queues requests, and falls back to one at a time, without losing a reading or failing a
poll, on one that does not. Real pymodbus servers: the meter simulator queueing, answering only the
first request of a segment, or closing the connection (agent.simkit.modbus_tcp), and pymodbus's own
server untouched, small raw TCP devices (busy or gateway exceptions, a queueing gateway with a dead
unit, a device ignoring a write of several requests, a one-off reset, a garbled reply); the real agent
against the simulator that answers only the first. Failures of the device itself teach nothing."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus import modbus_tcp_reads
from agent.bus.modbus import ModbusBus
from agent.bus.modbus_config import ModbusTcpLine
from agent.errors import DeviceException, DeviceTimeout, ProtocolError
from agent.simkit.net import serve_in_background
from drivers.modbus_meter.sim import start
from tests.chaos.agent_proc import AgentProcess, agent_config, wait_until
from tests.mqtt_helpers import Subscriber
from tests.sim_thread import simulator

TIMEOUT = 5.0  # a reply on loopback comes in microseconds, but a loaded machine may take seconds
FALLBACK = "does not take several requests at once"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_bus(port: int, name: str = "meters", clock: list[float] | None = None, **kw) -> ModbusBus:
    """A Modbus TCP line to 127.0.0.1:port; ``clock``: a one-item list the test moves (a virtual clock)."""
    line = ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port, **{"timeout": TIMEOUT, **kw})
    return ModbusBus(name, line) if clock is None else ModbusBus(name, line, clock=lambda: clock[0])


def meter_blocks(h) -> list[tuple[int, int, int]]:
    """Every register block the simulated meter serves (as a driver's plan reads them)."""
    return [(fc, a, min(len(w), 125)) for fc, blocks in h.units[1].blocks.items() for a, w in blocks]


async def served(h, blocks) -> list[bytes]:
    return [struct.pack(f">{n}H", *await h.server.async_getValues(1, fc, a, n)) for fc, a, n in blocks]


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and FALLBACK in r.getMessage()]


async def test_auto_sends_a_polls_blocks_together_to_a_device_that_queues(caplog):
    port = free_port()
    h = await start(units={1: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}")
    bus = tcp_bus(port)
    blocks = meter_blocks(h)
    assert len(blocks) >= 2
    try:
        for _ in range(3):
            assert await bus.read_register_blocks(1, blocks) == await served(h, blocks)
        assert h.server.most_outstanding == len(blocks)  # all of a poll's requests were out at once
        u = bus.stats()["units"][1]
        assert (u["transactions"], u["timeouts"], u["errors"], u["exceptions"]) == (3 * len(blocks), 0, 0, 0)
        assert warnings(caplog) == []
    finally:
        await bus.close()
        await h.stop()


@pytest.mark.parametrize("behaviour", ["first", "close"])
async def test_auto_falls_back_to_one_at_a_time_on_a_device_that_does_not_queue(behaviour, caplog):
    port = free_port()
    h = await start(units={1: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}", pipelining=behaviour)
    bus = tcp_bus(port)
    blocks = meter_blocks(h)
    try:
        # a poll that meets the device's refusal is read again at once: its readings arrive. It is
        # learnt the second time in a row (once may be a lost reply, a reboot or a blip)
        for _ in range(2):
            assert len(warnings(caplog)) == 0
            assert await bus.read_register_blocks(1, blocks) == await served(h, blocks)
        assert len(warnings(caplog)) == 1
        assert "line 'meters'" in warnings(caplog)[0] and "unit 1" in warnings(caplog)[0]
        h.server.most_outstanding = 0
        for _ in range(3):
            assert await bus.read_register_blocks(1, blocks) == await served(h, blocks)
        assert h.server.most_outstanding == 1  # one request at a time from now on
        assert len(warnings(caplog)) == 1  # said once
        st = bus.stats()
        u = st["units"][1]
        assert u["failures"] == 0 and u["errors"] == 0 and u["exceptions"] == 0 and u["skipped"] == 0
        # each refused group, its re-read one at a time, three polls one at a time
        assert u["transactions"] == (2 * 2 + 3) * len(blocks)
        if behaviour == "first":  # the requests the device dropped went unanswered; reopened for each re-read
            assert u["timeouts"] == 2 * (len(blocks) - 1) and st["drops"] == 0 and st["opens"] == 3
        else:  # the device closed the connection twice: reopened each time, nothing timed out
            assert u["timeouts"] == 0 and st["drops"] == 2 and st["opens"] == 3
        # remembered for the endpoint (host, port): a new connection to it does not try again
        again = tcp_bus(port, "meters-again")
        h.server.most_outstanding = 0
        assert await again.read_register_blocks(1, blocks) == await served(h, blocks)
        assert h.server.most_outstanding == 1 and len(warnings(caplog)) == 1
        await again.close()
    finally:
        await bus.close()
        await h.stop()


async def test_a_poll_cut_off_by_its_deadline_teaches_nothing_and_the_next_goes_one_at_a_time(caplog):
    """A device poll timeout shorter than the line's: the poll cut off while its group waits learns
    nothing (the deadline includes waiting for the line, and shutdown cancels too), and no warning;
    the unit's next poll is read one request at a time, as after any failure, and succeeds."""
    port = free_port()
    h = await start(units={1: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}", pipelining="first")
    bus = tcp_bus(port, timeout=60)
    blocks = meter_blocks(h)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3):  # as the scheduler bounds a poll
                await bus.read_register_blocks(1, blocks)
        assert h.server.most_outstanding == len(blocks)
        h.server.most_outstanding = 0
        assert await bus.read_register_blocks(1, blocks) == await served(h, blocks)
        assert h.server.most_outstanding == 1
        assert warnings(caplog) == [] and modbus_tcp_reads._ONE_AT_A_TIME == set()
    finally:
        await bus.close()
        await h.stop()


async def test_auto_falls_back_on_pymodbus_own_server(caplog):
    """pymodbus's server as it ships answers the first request of a TCP segment, nothing after it."""
    port = free_port()
    regs = [SimData(0, values=list(range(300)), datatype=DataType.UINT16)]
    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    server = ModbusTcpServer([SimDevice(id=3, simdata=(bits, bits, regs, regs))], address=("127.0.0.1", port))
    await serve_in_background(server, f"127.0.0.1:{port}")
    bus = tcp_bus(port)
    blocks = [(4, 0, 10), (3, 100, 3), (4, 200, 60)]
    try:
        for _ in range(3):
            got = await bus.read_register_blocks(3, blocks)
            assert [list(struct.unpack(f">{len(b) // 2}H", b)) for b in got] == [
                list(range(a, a + n)) for _, a, n in blocks]
        assert len(warnings(caplog)) == 1
        assert bus.stats()["units"][3]["failures"] == 0
    finally:
        await bus.close()
        await server.shutdown()


class _BusyDevice(asyncio.Protocol):
    """Answers the first request of a segment (register i holds i) and exception ``code`` (6 busy, or a
    gateway's 10/11) to the rest; counts segments carrying more than one request."""

    together = 0
    code = 6

    def connection_made(self, transport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        frames = [struct.unpack_from(">HHHBBHH", data, i) for i in range(0, len(data) - 11, 12)]
        type(self).together += len(frames) > 1
        for k, (tid, _, _, unit, fc, address, count) in enumerate(frames):
            if k:
                self.t.write(struct.pack(">HHHBBB", tid, 0, 3, unit, fc | 0x80, self.code))
            else:
                regs = struct.pack(f">{count}H", *range(address, address + count))
                self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * count, unit, fc, 2 * count) + regs)


@pytest.mark.parametrize("code", [6, 10, 11])
async def test_auto_falls_back_on_a_busy_reply(code, caplog, monkeypatch):
    monkeypatch.setattr(_BusyDevice, "code", code)
    monkeypatch.setattr(_BusyDevice, "together", 0)
    server = await asyncio.get_running_loop().create_server(_BusyDevice, "127.0.0.1", 0)
    bus = tcp_bus(server.sockets[0].getsockname()[1])
    blocks = [(4, 0, 10), (3, 100, 3), (4, 200, 60)]
    try:
        for _ in range(3):
            got = await bus.read_register_blocks(5, blocks)
            assert [list(struct.unpack(f">{len(b) // 2}H", b)) for b in got] == [
                list(range(a, a + n)) for _, a, n in blocks]
        # learnt the second time in a row
        assert _BusyDevice.together == 2 and len(warnings(caplog)) == 1 and f"exception {code}" in warnings(caplog)[0]
        u = bus.stats()["units"][5]
        assert (u["exceptions"], u["timeouts"], u["failures"]) == (4, 0, 0)  # the busy replies of the two groups
    finally:
        await bus.close()
        server.close()


class _Gateway:
    """A Modbus TCP device or gateway for these tests: each connection's requests are answered in order,
    one after another, from a queue (register i holds i). Units in ``dead`` hold the queue ``hold``
    seconds each, then get exception ``dead_reply`` (None: nothing), as a gateway whose serial device
    is gone. ``single_only``: a segment carrying several requests is ignored altogether; ``first_only``:
    only its first request is answered; ``max_queue``: only its first ``max_queue``; ``drop_over``: a
    segment of more requests is ignored altogether (a small receive buffer). Units in ``slow``
    are answered ``hold`` seconds late each. ``reset_next``:
    the next segment resets the connection; ``garble_next``: the reply to its second request has a
    wrong byte count. Counts requests per unit and segments carrying several."""

    def __init__(self, *, dead: tuple[int, ...] = (), hold: float = 0.0, dead_reply: int | None = None,
                 single_only: bool = False, first_only: bool = False, slow: tuple[int, ...] = (),
                 max_queue: int = 0, drop_over: int = 0):
        self.drop_over = drop_over
        self.dead, self.hold, self.dead_reply, self.single_only = dead, hold, dead_reply, single_only
        self.slow, self.max_queue = slow, max_queue
        self.gate: asyncio.Event | None = None  # set: units in ``slow`` wait for it instead of ``hold``
        self.first_only = first_only
        self.requests: dict[int, int] = {}
        self.segments: list[tuple[int, int]] = []  # (unit, requests) of each segment received, in order
        self.together = 0
        self.reset_next = self.garble_next = False
        self.junk_next = False  # the next segment is answered first with bytes that are not Modbus TCP

    async def serve(self) -> tuple[asyncio.Server, int]:
        server = await asyncio.get_running_loop().create_server(lambda: _GatewayConn(self), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]


class _GatewayConn(asyncio.Protocol):
    def __init__(self, gw: _Gateway):
        self.gw, self.queue = gw, asyncio.Queue()

    def connection_made(self, transport) -> None:
        self.t = transport
        self.worker = asyncio.get_running_loop().create_task(self._work())

    def connection_lost(self, exc) -> None:
        self.worker.cancel()  # what was queued on this connection is dropped

    def data_received(self, data: bytes) -> None:
        gw = self.gw
        frames = [struct.unpack_from(">HHHBBHH", data, i) for i in range(0, len(data) - 11, 12)]
        gw.together += len(frames) > 1
        gw.segments.append((frames[0][3], len(frames)))
        for f in frames:
            gw.requests[f[3]] = gw.requests.get(f[3], 0) + 1
        if gw.junk_next:
            gw.junk_next = False
            self.t.write(b"\xff" * 8)
        if gw.reset_next:
            gw.reset_next = False
            self.t.abort()
            return
        if (gw.single_only and len(frames) > 1) or (gw.drop_over and len(frames) > gw.drop_over):
            return
        if gw.first_only:
            frames = frames[:1]
        if gw.max_queue:
            frames = frames[:gw.max_queue]
        garble, gw.garble_next = gw.garble_next, False
        for k, f in enumerate(frames):
            self.queue.put_nowait((f, garble and k == 1))

    async def _work(self) -> None:
        gw = self.gw
        while True:
            (tid, _, _, unit, fc, address, count), garble = await self.queue.get()
            if unit in gw.dead:
                await asyncio.sleep(gw.hold)
                if gw.dead_reply is not None:
                    self.t.write(struct.pack(">HHHBBB", tid, 0, 3, unit, fc | 0x80, gw.dead_reply))
                continue
            if unit in gw.slow:
                await (gw.gate.wait() if gw.gate is not None else asyncio.sleep(gw.hold))
            regs = struct.pack(f">{count}H", *range(address, address + count))
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * count, unit, fc, 2 * count + garble) + regs)


BLOCKS = [(4, 0, 10), (3, 100, 3), (4, 200, 60)]
EXPECTED = [list(range(a, a + n)) for _, a, n in BLOCKS]


def registers(got: list[bytes]) -> list[list[int]]:
    return [list(struct.unpack(f">{len(b) // 2}H", b)) for b in got]


@pytest.mark.parametrize("dead_reply", [None, 11])
async def test_a_dead_unit_behind_a_queueing_gateway_costs_one_request_per_poll_after_its_first_failure(
        dead_reply, caplog):
    """The gateway queues requests; unit 2's device is gone (the gateway stays silent, or answers 11
    after its own timeout). Unit 2's blocks go together once; after that failure one request per poll
    (the chain stops at the first failure), so it cannot hold the gateway's queue for its other
    requests; unit 1 keeps succeeding together. Nothing is learnt about the gateway."""
    gw = _Gateway(dead=(2,), hold=0.1, dead_reply=dead_reply)
    server, port = await gw.serve()
    now = [0.0]
    bus = tcp_bus(port, "gw", clock=now, timeout=2.0)
    try:
        for cycle in range(4):
            assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
            with pytest.raises((DeviceTimeout, DeviceException)):
                await bus.read_register_blocks(2, BLOCKS)
            first = len(BLOCKS)  # the group; then one request per poll
            assert gw.requests[2] == first + cycle, cycle
            now[0] += 3600  # past the unit's backoff: it is polled each cycle
        assert gw.requests[1] == 4 * len(BLOCKS) and gw.together == 5  # unit 1 together each time
        assert bus.stats()["units"][1]["failures"] == 0
        assert warnings(caplog) == []
    finally:
        await bus.close()
        server.close()


async def test_auto_falls_back_on_a_device_that_ignores_a_write_of_several_requests(caplog):
    """Silence to a group fails that poll as a silent device's does (one timeout, an error naming the
    unit); the next poll, one at a time, is answered: a failed group. The second time in a row the
    endpoint is learnt, and every poll after it is answered."""
    gw = _Gateway(single_only=True)
    server, port = await gw.serve()
    now = [0.0]
    bus = tcp_bus(port, clock=now)
    outcomes = []
    try:
        for _ in range(6):
            try:
                assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
                outcomes.append("answered")
            except DeviceTimeout as e:
                assert f"unit 1 on 'meters': no reply within {TIMEOUT:g} s to 3 requests sent together" in str(e)
                outcomes.append("silent")
            now[0] += 3600  # past the unit's backoff
        assert outcomes == ["silent", "answered", "silent", "answered", "answered", "answered"]
        assert gw.together == 2 and len(warnings(caplog)) == 1 and "no reply to 3 requests" in warnings(caplog)[0]
    finally:
        await bus.close()
        server.close()


async def test_a_failed_group_and_its_re_read_hold_the_line_together(caplog):
    """Two units polled at once behind an endpoint that answers the first request of a write only: each
    unit's re-read follows its own failed group at once (no other poll's group waits in between, so the
    poll deadline, which counts the wait for the line, is not spent on the neighbour's group)."""
    gw = _Gateway(first_only=True)
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        for got in await asyncio.gather(*(bus.read_register_blocks(u, BLOCKS) for u in (1, 2))):
            assert registers(got) == EXPECTED
        n = len(BLOCKS)
        first = gw.segments[0][0]
        other = 3 - first
        assert gw.segments == [(first, n)] + [(first, 1)] * n + [(other, n)] + [(other, 1)] * n
        assert len(warnings(caplog)) == 1  # the endpoint's second failed group in a row
    finally:
        await bus.close()
        server.close()


async def test_pipeline_true_restarts_a_connection_whose_group_went_unanswered():
    """pipeline = true, unit 2 gone behind a queueing gateway that holds each request a while: the
    connection is restarted after its silent group, so unit 1's next poll is not queued behind the
    requests the gateway still holds (on the old connection it would wait for all three)."""
    gw = _Gateway(dead=(2,), hold=0.8 * TIMEOUT)
    server, port = await gw.serve()
    bus = tcp_bus(port, pipeline=True)
    try:
        with pytest.raises(DeviceTimeout):
            await bus.read_register_blocks(2, BLOCKS)
        assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
        assert bus.stats()["units"][1]["failures"] == 0 and bus.stats()["units"][2]["timeouts"] == len(BLOCKS)
    finally:
        await bus.close()
        server.close()


async def test_a_one_off_connection_reset_does_not_teach_the_fallback(caplog):
    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
        gw.reset_next = True  # a reboot, a network blip, an idle-close timer
        assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED  # read again one at a time
        for _ in range(2):
            assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
        assert gw.together == 4  # still together after the reset
        assert warnings(caplog) == [] and bus.stats()["units"][1]["failures"] == 0
    finally:
        await bus.close()
        server.close()


async def test_a_garbled_reply_in_a_group_is_a_protocol_error_not_a_sign(caplog):
    gw = _Gateway()
    server, port = await gw.serve()
    bus = tcp_bus(port)
    try:
        gw.garble_next = True
        assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED  # retried (retries = 1)
        assert registers(await bus.read_register_blocks(1, BLOCKS)) == EXPECTED
        assert gw.together == 3 and warnings(caplog) == []
        u = bus.stats()["units"][1]
        assert (u["errors"], u["timeouts"], u["failures"]) == (1, 0, 0)
        gw.garble_next = True
        once = tcp_bus(port, "no-retry", retries=0)
        with pytest.raises(ProtocolError):
            await once.read_register_blocks(1, BLOCKS)
        await once.close()
        assert warnings(caplog) == []
    finally:
        await bus.close()
        server.close()


async def test_units_behind_one_endpoint_learn_the_fallback_once(caplog):
    port = free_port()
    h = await start(units={1: "sdm630", 2: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}",
                    pipelining="first")
    bus = tcp_bus(port)
    blocks = meter_blocks(h)
    try:
        assert await bus.read_register_blocks(1, blocks) == await served(h, blocks)
        assert len(warnings(caplog)) == 0
        # unit 2's group fails too, the endpoint's second in a row: learnt for both
        assert len(await bus.read_register_blocks(2, blocks)) == len(blocks)
        assert len(warnings(caplog)) == 1
        h.server.most_outstanding = 0
        before = bus.stats()["units"][1]["timeouts"]
        for unit in (1, 2):
            assert len(await bus.read_register_blocks(unit, blocks)) == len(blocks)
        assert h.server.most_outstanding == 1 and len(warnings(caplog)) == 1
        assert bus.stats()["units"][1]["timeouts"] == before  # straight to one at a time: nothing dropped
    finally:
        await bus.close()
        await h.stop()


async def test_pipeline_true_and_false_mean_what_they_say(caplog):
    port = free_port()
    h = await start(units={1: "sdm630"}, update_interval=None, tcp=f"127.0.0.1:{port}", pipelining="first")
    blocks = meter_blocks(h)
    seq, forced = tcp_bus(port, pipeline=False), tcp_bus(port, pipeline=True)
    try:
        assert await seq.read_register_blocks(1, blocks) == await served(h, blocks)
        assert h.server.most_outstanding == 1
        with pytest.raises(DeviceTimeout, match="pipeline = true"):  # always together: the device drops the rest
            await forced.read_register_blocks(1, blocks)
        assert h.server.most_outstanding == len(blocks)
        u = forced.stats()["units"][1]
        assert (u["transactions"], u["timeouts"], u["errors"]) == (len(blocks), len(blocks) - 1, 0)
        assert warnings(caplog) == []  # nothing learnt or said: the line's setting is followed
    finally:
        await seq.close()
        await forced.close()
        await h.stop()


def test_running_agent_delivers_every_poll_from_a_device_that_answers_one_request_at_a_time(tmp_path: Path, mosquitto):
    port = free_port()
    extra = (f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 3\n\n'
             '[[devices]]\nname = "main-meter"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "meters"\n'
             'poll_interval = 0.2\ntimeout = 20\n')
    cfg = agent_config(tmp_path, mosquitto, {}, extra=extra)
    sub = Subscriber(mosquitto, ["edge/gw-chaos/#"]).start()
    with simulator("sdm630", tcp=f"127.0.0.1:{port}", update_interval=None, pipelining="first") as h:
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        try:
            def health() -> dict | None:
                bodies = [m.json() for m in sub.snapshot() if m.topic.endswith("/health")]
                return bodies[-1]["devices"].get("main-meter") if bodies else None

            assert wait_until(lambda: (d := health()) is not None and d["polls_ok"] >= 10, 120), agent.log_tail()
            assert health()["polls_failed"] == 0, agent.log_tail()
            telemetry = [m.json() for m in sub.snapshot() if m.topic.endswith("/telemetry/main-meter")]
            assert telemetry, agent.log_tail()
            log = agent.log_tail(200_000)
            said = [line for line in log.splitlines() if FALLBACK in line]
            assert len(said) == 1 and "WARNING" in said[0], log
            assert "line 'meters'" in said[0] and "device 'main-meter' (unit 1)" in said[0], said
            assert h.server.most_outstanding > 1  # the first poll went out together
        finally:
            agent.terminate()
            sub.stop()
