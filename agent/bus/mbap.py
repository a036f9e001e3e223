"""A small asyncio Modbus TCP (MBAP) client for the steady poll of ``modbus_tcp`` lines.

pymodbus's client builds a PDU object per request and per reply, formats ``str(pdu)`` for a debug
log line on every decode (whatever the log level) and keeps a frame dump. Here a request is 12 bytes
packed with ``struct`` and a reply is matched to its request by transaction id and sliced, nothing
more; the payload stays bytes for the caller to view with numpy. The bus keeps its error mapping: the client raises the bus's own Modbus exception types
(agent.bus.modbus_errors: ``ModbusIOException`` for no or an unusable reply, the latter as its subclass :class:`GarbledReply`,
``ConnectionException`` for a lost connection), exactly where pymodbus's client raises its own.

Only what the bus uses exists: FC1/2/3/4 reads and FC5/6/16 writes, connect, close, ``connected``.

A poll's register blocks go out as a chain (:meth:`MbapClient.read_chain`): each request is written
from the reply callback of the one before, so the event loop wakes once per reply and the polling task
once per poll, and one timer serves the chain (each request still gets the whole timeout). Or they go
out together in one write (:meth:`MbapClient.read_many`), several transactions outstanding, for a
device that queues them; one timer serves the group.

A device (a gateway, the simulator) answers each request of a write with its own segment, so a write of
several units' requests (:meth:`MbapClient.send_batch`) would wake the event loop once per reply.
Reading is paused after such a write for as long as the connection has learnt its replies take to be
complete (at most ``HOLD_MAX``, and never before the first write has taught it), then the replies
already in are taken in one read. All in at that read, the hold is tried 10 % shorter; not all in, the
rest are read as they come, as before, and the write's time is averaged in (a quarter weight, at most
``HOLD_MAX``): the hold stays at or a little under what the replies take, so it does not keep the line
longer than they do. Timeouts, errors and a lost connection are as without the hold (a lost connection
is seen when reading resumes; a request timeout falling due in the same loop turn as the resume, the
loop having been busy, first reads what came). With 10 SDM630 meters polled every second on one
connection the agent's main thread woke 12.7–15.1 times a second instead of 20–39, and the agent used
0.48–0.61 % of a core instead of 0.52–0.81 %, lower in 5 of 6 pairs (``tests/bench/bench_idle.py``, 6
rounds A/B); 40 meters × 60 values every 100 ms cost 4.1–4.4 CPU-s per million datapoints instead of 4.9
(bench_footprint.py).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .modbus_errors import ConnectionException, ModbusIOException

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
SIGNS = (6, 10, 11)  # busy, gateway path unavailable, gateway target failed: to a later request of a write, a sign
# requests per write: whole frames in one TCP segment on any path with an MTU of 1280 or more (IPv6's
# minimum; LTE, PPPoE and VPN links: 1200 of the 1208 bytes left by the IP, TCP and timestamp headers).
# On a smaller path a write may be split inside a frame: a device that cannot join a frame across
# segments then fails the unit whose frame was split, every write (pipeline = false on such a line).
WRITE_REQUESTS = 100
# a write of several units' requests: reading is paused for what its replies took to be complete (learnt
# per connection), at most this long (a poll done with its own replies waits at most this for them)
HOLD_MAX = 0.02
HOLD_MIN = 0.00005  # replies learnt to be complete sooner (one segment): not worth a pause and a timer


class GarbledReply(ModbusIOException):
    """A reply that came but cannot be used (not MBAP, wrong unit or function, byte count off)."""


class NotMbap(GarbledReply):
    """Bytes that are not a Modbus TCP frame: every request outstanding fails with it, one sender."""


_HEAD = struct.Struct(">HHHBB")  # transaction id, protocol id (0), length, unit, function code
_MAX_TID = 0xFFFF


class Reply:
    """A decoded reply: ``registers``/``bits`` for reads, ``payload`` the data bytes after the byte count."""

    __slots__ = ("exception_code", "function_code", "payload")

    def __init__(self, function_code: int, payload: bytes, exception_code: int = 0):
        self.function_code = function_code
        self.payload = payload
        self.exception_code = exception_code

    def isError(self) -> bool:  # noqa: N802 - pymodbus's name: the bus reads replies of both clients
        return bool(self.exception_code)

    @property
    def registers(self) -> list[int]:
        return list(struct.unpack(f">{len(self.payload) // 2}H", self.payload))

    @property
    def bits(self) -> list[bool]:
        return [bool(b >> i & 1) for b in self.payload for i in range(8)]


class Checked(list):
    """Payloads of several reads, each checked already (the bus asks a reply ``isError()``)."""

    def isError(self) -> bool:  # noqa: N802 - the name pymodbus's replies answer to
        return False


class _Protocol(asyncio.Protocol):
    def __init__(self, client: MbapClient):
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)


class MbapClient:
    """One TCP connection to a Modbus TCP server (a device or a gateway)."""

    def __init__(self, host: str, port: int, *, timeout: float,
                 trace_packet: Callable[[bool, bytes], bytes] | None = None):
        self.host, self.port = host, port
        self.timeout = timeout  # seconds to wait for a reply (the bus sets it per request)
        self._trace = trace_packet or (lambda sending, data: data)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, tuple[asyncio.Future, int, int]] = {}  # tid -> (future, unit, fc)
        self._timers: dict[int, asyncio.TimerHandle] = {}  # tid -> its reply timeout
        self._buf = b""
        self._tid = 0
        self._chain: _Chain | None = None  # the chain of reads under way, if any
        self._group: _Group | None = None  # the group of reads outstanding together, if any
        self._batch: _Group | None = None  # the group sent by send_batch, until end_batch
        self.answered = 0  # replies the last group (read_many) got, whether it succeeded or not
        self.replies_time: float | None = None  # learnt: seconds from a batch's write to its last reply

    # -- connection -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), self.host, self.port), self.timeout)
        except (OSError, TimeoutError):
            return False
        self._transport = transport  # type: ignore[assignment]
        self._buf = b""
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._buf = b""
        pending, self._pending = self._pending, {}
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for fut, _, _ in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionException(f"connection to {self.host}:{self.port} lost"))
        if self._group is not None:
            self._group.wake()

    # -- requests ---------------------------------------------------------------------------
    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        return await self._one(3, device_id, struct.pack(">HH", address, count))

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        return await self._one(4, device_id, struct.pack(">HH", address, count))

    async def read_coils(self, address: int, *, count: int, device_id: int) -> Reply:
        return await self._one(1, device_id, struct.pack(">HH", address, count))

    async def read_discrete_inputs(self, address: int, *, count: int, device_id: int) -> Reply:
        return await self._one(2, device_id, struct.pack(">HH", address, count))

    async def write_register(self, address: int, value: int, *, device_id: int,
                             no_response_expected: bool = False) -> Reply | None:
        return await self._one(6, device_id, struct.pack(">HH", address, value), no_response_expected)

    async def write_registers(self, address: int, values: Sequence[int], *, device_id: int,
                              no_response_expected: bool = False) -> Reply | None:
        data = struct.pack(f">HHB{len(values)}H", address, len(values), 2 * len(values), *values)
        return await self._one(16, device_id, data, no_response_expected)

    async def write_coil(self, address: int, value: bool, *, device_id: int,
                         no_response_expected: bool = False) -> Reply | None:
        return await self._one(5, device_id, struct.pack(">HH", address, 0xFF00 if value else 0),
                               no_response_expected)

    async def read_many(self, unit: int, requests: Sequence[tuple[int, int, int]]) -> list[Reply]:
        """Register reads ``(fc, address, count)`` of one unit sent in one write, several transactions
        outstanding; the replies in request order. Replies are matched by transaction id (in any
        order); the first is due within ``timeout`` of the write and each later one within ``timeout``
        of the reply before it (a device that queues answers them one after another). Raises as a
        single read would, for the first request that fails; :attr:`answered` then tells how many of
        the group were answered (a sign the device takes one request at a time)."""
        self.answered = 0
        group = self._send_group([(unit, fc, a, c) for fc, a, c in requests], stop_on_error=True)
        try:
            await group.done  # one wake-up for the group, however its replies are segmented
            for fut in group.futs:
                if fut.done() and (e := fut.exception()) is not None:
                    raise e
            return [fut.result() for fut in group.futs]
        finally:
            self._end_group(group)
            self.answered = sum(fut.done() and not fut.cancelled() and fut.exception() is None for fut in group.futs)

    def send_batch(self, requests: Sequence[tuple[int, int, int, int]], spans: Sequence[int],
                   on_span: Callable[[int], None]) -> list[asyncio.Future]:
        """Register reads ``(unit, fc, address, count)`` of several units sent in one write; a future per
        request, in request order, each done with its reply or the exception a single read would raise
        (``ModbusIOException`` unanswered, :class:`GarbledReply`, ``ConnectionException``). The requests
        fall in consecutive spans of ``spans[k]`` each (a poll's); ``on_span(k)`` is called as the last
        reply of span ``k`` comes in (not when requests fail). Unlike :meth:`read_many` one failure does
        not end the wait for the other replies; they are due as there. Then :meth:`wait_batch`,
        :meth:`end_batch`."""
        group = self._batch = self._send_group(requests, stop_on_error=False)
        group.span = [k for k, n in enumerate(spans) for _ in range(n)]
        group.span_left = list(spans)
        group.on_span = on_span
        if self.replies_time is not None and self.replies_time >= HOLD_MIN and len(spans) > 1 \
                and self._transport is not None:
            # the device answers each request with its own segment: read them together, not one wake-up each
            self._transport.pause_reading()
            group.held = _PAUSED
            group.resume = group.done.get_loop().call_later(
                min(self.replies_time, HOLD_MAX, self.timeout / 4), self._resume, group)
        return group.futs

    def _resume(self, group: _Group) -> None:
        group.resume = None
        group.held = _RESUMED
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _learn(self, group: _Group, now: float) -> None:
        """A batch's last reply is in: its time learnt (an average, a quarter weight for the newest; a write
        longer than ``HOLD_MAX`` counts as ``HOLD_MAX``, so one slow write moves it a little, not to the cap
        for dozens of writes). All in at the first read after a pause: the hold is tried 10 % shorter (what
        the replies took is then unknown, only that it was no longer). The hold so stays at or a little under
        what the replies take: it does not keep the line longer than they do."""
        if group.held == _RESUMED:
            assert self.replies_time is not None
            self.replies_time *= 0.9
            return
        took = min(now - group.written, HOLD_MAX)
        rt = self.replies_time
        self.replies_time = took if rt is None else rt + (took - rt) / 4

    async def wait_batch(self) -> None:
        """Until every request of the batch is answered or failed."""
        assert self._batch is not None
        await self._batch.done

    def end_batch(self) -> None:
        """The batch sent last is over: whatever is still unanswered is given up."""
        if self._batch is not None:
            self._end_group(self._batch)
            self._batch = None

    def _send_group(self, requests: Sequence[tuple[int, int, int, int]], *, stop_on_error: bool) -> _Group:
        self._check_connected()
        loop = asyncio.get_running_loop()
        group = _Group(loop.time() + self.timeout, loop.create_future(), len(requests), stop_on_error=stop_on_error)
        group.written = loop.time()
        frames = []
        for unit, fc, address, count in requests:
            tid = self._next_tid()
            fut = loop.create_future()
            self._pending[tid] = (fut, unit, fc)
            group.tids.append(tid)
            group.futs.append(fut)
            frames.append(_HEAD.pack(tid, 0, 6, unit, fc) + struct.pack(">HH", address, count))
        group.members = frozenset(group.tids)
        group.index = {tid: i for i, tid in enumerate(group.tids)}
        self._group = group
        for i in range(0, len(frames), WRITE_REQUESTS):  # each write whole frames within one segment
            self._send(b"".join(frames[i:i + WRITE_REQUESTS]))
        group.timer = loop.call_at(group.deadline, self._group_expire, group)
        return group

    def _end_group(self, group: _Group) -> None:
        self._group = None
        group.timer.cancel()
        if group.resume is not None:
            group.resume.cancel()
            self._resume(group)
        for tid, fut in zip(group.tids, group.futs, strict=True):
            self._pending.pop(tid, None)
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # retrieved: a failure the caller did not look at is not logged as lost
        if not self._pending:
            self._buf = b""

    def _group_expire(self, group: _Group) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < group.deadline:  # a reply came meanwhile: the next one has its own deadline
            group.timer = loop.call_at(group.deadline, self._group_expire, group)
            return
        if group.held in (_PAUSED, _RESUMED):  # the loop was too busy to read since the hold (its timer
            # fell due with this one): read what is in first (a timer due now runs after the next reads)
            if group.resume is not None:
                group.resume.cancel()
                self._resume(group)
            group.held = _READ
            group.timer = loop.call_at(loop.time(), self._group_expire, group)
            return
        for tid, fut in zip(group.tids, group.futs, strict=True):
            if not fut.done():
                fut.set_exception(ModbusIOException(f"no reply to transaction {tid} within {self.timeout:g} s"))
        group.wake()

    async def read_chain(self, unit: int, requests: Sequence[tuple[int, int, int]], done: list[bytes]) -> Reply | None:
        """Register reads ``(fc, address, count)`` of one unit, one at a time, each written as the
        previous reply is taken (no task switch between them) and given the whole ``timeout``. Each
        reply's register bytes are appended to ``done`` as it arrives, so a caller that retries after a
        failure goes on from the request that failed. Returns None when all are read, the exception
        reply when the unit answers one with a Modbus exception (the chain stops there); raises as a
        single read would."""
        self._check_connected()
        if not requests:
            return None
        loop = asyncio.get_running_loop()
        chain = self._chain = _Chain(unit, requests, done, loop.create_future())
        self._chain_send(chain, loop.time())
        chain.timer = loop.call_at(chain.deadline, self._chain_expire, chain)
        try:
            return await chain.fut
        finally:
            self._chain = None
            self._pending.pop(chain.tid, None)
            if chain.timer is not None:
                chain.timer.cancel()
            if not self._pending:
                self._buf = b""

    def _chain_send(self, chain: _Chain, now: float) -> None:
        fc, address, count = chain.requests[chain.i]
        tid = chain.tid = self._next_tid()
        self._pending[tid] = (chain.fut, chain.unit, fc)
        chain.deadline = now + self.timeout
        self._send(_HEAD.pack(tid, 0, 6, chain.unit, fc) + struct.pack(">HH", address, count))

    def _chain_expire(self, chain: _Chain) -> None:
        chain.timer = None
        if chain.fut.done():
            return
        loop = chain.fut.get_loop()
        if loop.time() < chain.deadline:  # the request now outstanding was sent later: its own deadline
            chain.timer = loop.call_at(chain.deadline, self._chain_expire, chain)
            return
        chain.fut.set_exception(ModbusIOException(f"no reply to transaction {chain.tid} within {self.timeout:g} s"))

    async def _one(self, fc: int, unit: int, data: bytes, no_response: bool = False) -> Any:
        self._check_connected()
        if no_response:
            self._send(_HEAD.pack(self._next_tid(), 0, 2 + len(data), unit, fc) + data)
            return None
        tid, fut = self._expect(unit, fc)
        self._send(_HEAD.pack(tid, 0, 2 + len(data), unit, fc) + data)
        return await self._wait(tid, fut)

    def _check_connected(self) -> None:
        if not self.connected:
            raise ConnectionException(f"not connected to {self.host}:{self.port}")

    def _next_tid(self) -> int:
        self._tid = self._tid % _MAX_TID + 1
        return self._tid

    def _expect(self, unit: int, fc: int) -> tuple[int, asyncio.Future]:
        tid = self._next_tid()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[tid] = (fut, unit, fc)
        self._timers[tid] = loop.call_later(self.timeout, self._expire, tid)
        return tid, fut

    def _send(self, frame: bytes) -> None:
        assert self._transport is not None
        self._transport.write(self._trace(True, frame))

    async def _wait(self, tid: int, fut: asyncio.Future) -> Reply:
        try:
            return await fut
        finally:
            self._pending.pop(tid, None)
            if (timer := self._timers.pop(tid, None)) is not None:
                timer.cancel()
            if not self._pending:
                self._buf = b""  # a partial reply left by a timed-out request must not prefix the next one

    def _expire(self, tid: int) -> None:
        self._timers.pop(tid, None)
        entry = self._pending.get(tid)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(ModbusIOException(f"no reply to transaction {tid} within {self.timeout:g} s"))

    # -- replies ----------------------------------------------------------------------------
    def _received(self, data: bytes) -> None:
        if (group := self._group) is not None and group.held == _RESUMED:
            self._take(data)
            group.held = _READ  # the first read after a pause
            return
        self._take(data)

    def _take(self, data: bytes) -> None:
        buf = self._buf + self._trace(False, data) if self._buf else self._trace(False, data)
        pos, end = 0, len(buf)
        while end - pos >= 8:
            tid, pid, length, unit, fc = _HEAD.unpack_from(buf, pos)
            if pid != 0 or not 2 <= length <= 254:  # not MBAP: nothing after it can be trusted
                self._fail_all("reply is not a Modbus TCP frame")
                self._buf = b""
                return
            if end - pos < 6 + length:
                break
            body = buf[pos + 8:pos + 6 + length]
            pos += 6 + length
            self._reply(tid, unit, fc, body)
        self._buf = buf[pos:]

    def _reply(self, tid: int, unit: int, fc: int, body: bytes) -> None:
        entry = self._pending.get(tid)
        if entry is None or entry[0].done():
            return  # a late reply to a request that timed out
        fut, want_unit, want_fc = entry
        if (group := self._group) is not None and tid in group.members:
            group.deadline = fut.get_loop().time() + self.timeout
        else:
            group = None
        if unit != want_unit or fc & 0x7F != want_fc:
            fut.set_exception(GarbledReply(f"reply to transaction {tid} is for unit {unit} function {fc}, "
                                                f"not unit {want_unit} function {want_fc}"))
        elif fc & 0x80:
            fut.set_result(Reply(want_fc, b"", body[0] if body else 4))
        elif want_fc <= 4:
            if not body or body[0] != len(body) - 1:
                fut.set_exception(GarbledReply(f"reply to transaction {tid}: byte count does not match"))
            elif (chain := self._chain) is not None and chain.tid == tid:
                del self._pending[tid]
                chain.done.append(body[1:])
                chain.i += 1
                if chain.i < len(chain.requests):
                    self._chain_send(chain, fut.get_loop().time())
                else:
                    fut.set_result(None)
            else:
                fut.set_result(Reply(fc, body[1:]))
        else:
            fut.set_result(Reply(fc, body))
        if group is not None:
            group.left -= 1
            if group.on_span is not None:
                if not group.left:
                    self._learn(group, fut.get_loop().time())
                k = group.span[group.index[tid]]
                group.span_left[k] -= 1
                if not group.span_left[k]:
                    group.on_span(k)
            if not group.left or (group.stop_on_error and fut.exception() is not None):
                group.wake()

    def _fail_all(self, why: str) -> None:
        for fut, _, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(NotMbap(why))
        if self._group is not None:
            self._group.wake()


class _Chain:
    """A chain of register reads under way (see :meth:`MbapClient.read_chain`)."""

    __slots__ = ("deadline", "done", "fut", "i", "requests", "tid", "timer", "unit")

    def __init__(self, unit: int, requests: Sequence[tuple[int, int, int]], done: list[bytes], fut: asyncio.Future):
        self.unit, self.requests, self.done, self.fut = unit, requests, done, fut
        self.i = 0  # the request outstanding
        self.tid = 0
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None


_READING, _PAUSED, _RESUMED, _READ = range(4)  # a batch's reading: never paused; paused; resumed; read since


class _Group:
    """Reads outstanding together (see :meth:`MbapClient.read_many`); one timer serves them."""

    __slots__ = ("deadline", "done", "futs", "held", "index", "left", "members", "on_span", "resume", "span",
                 "span_left", "stop_on_error", "tids", "timer", "written")

    def __init__(self, deadline: float, done: asyncio.Future, n: int, *, stop_on_error: bool = True):
        self.deadline = deadline  # when the next reply is due
        self.done = done  # set when every reply is in or (stop_on_error) one request failed
        self.left = n  # replies still to come
        self.stop_on_error = stop_on_error
        self.tids: list[int] = []
        self.members: frozenset[int] = frozenset()
        self.index: dict[int, int] = {}  # tid -> its request's place
        self.span: list[int] = []  # request's place -> its span (send_batch)
        self.span_left: list[int] = []  # replies each span still waits for
        self.on_span: Callable[[int], None] | None = None
        self.futs: list[asyncio.Future] = []
        self.timer: asyncio.TimerHandle
        self.written = 0.0  # when the requests were written
        self.held = _READING
        self.resume: asyncio.TimerHandle | None = None  # resumes reading paused after the write

    def wake(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
