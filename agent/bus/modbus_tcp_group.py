"""Several devices' polls waiting for one ``modbus_tcp`` line, sent in one write (a group commit).

A poll whose blocks may go together (see agent.bus.modbus_tcp_reads) and that finds the line busy
joins the line's queue instead of waiting for the lock on its own. One task per line serves the
queue: under one hold of the line it writes the waiting polls' requests together (at most
``MAX_REQUESTS``, in one write of whole frames that fits one TCP segment on any path with an MTU of 1280 or more), hands each poll its replies as soon as they are in, and takes the next batch in a later hold (a write or a
one-at-a-time read waiting for the lock goes in between). A poll that finds the line free is served
alone, as before, unless the scheduler says other devices of the line fall due in the same turn of the
event loop (agent.contract.lines.POLLS_DUE_TOGETHER): then it joins the queue, whose task starts in the
next turn and sends them all in one write (one round trip a cycle, not one for the first poll and one
for the rest).

Each unit keeps what a group of its own promises. A unit whose replies all came is answered (its
exception reply is its error); every other unit of the batch (a request unanswered or garbled, the
connection closed, exception 6/10/11 to a later request) is read again one request at a time in the
same hold, after the connection is restarted, so a dead unit among healthy ones costs them nothing
but the wait; the re-read's outcome is the unit's. A unit the device went past (it answered a later
unit of the write) is not read again: its silence, or exception 10/11, is its own (the connection is
restarted). No reply at all to the whole write fails the first unit of it as a silent device's (as its
own group would) and the others are read again; that unit answering alone next is a refused write.
A write holds only polls already waiting, in arrival order, and each is done with its own replies: on a
line answering one request at a time no unit is done later than it would be queued one at a time.
Whether the endpoint takes several units' requests at once is learnt apart from whether it takes
one unit's: a batch that fails so while every unit of it answers one at a time, for the second batch
in a row at the host and port, turns combining off there (a gateway may queue a poll's few requests
but not forty units' worth); the units' own groups go on as before. A cancelled poll (its deadline,
shutdown) leaves the batch to the others and teaches nothing. The write's replies, one segment each, are
read together after a hold the connection learns (see agent.bus.mbap), not one wake-up each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from ..errors import BusUnavailable, DeviceTimeout
from . import modbus_tcp_reads as reads
from .mbap import EXCEPTION_NAMES, SIGNS, GarbledReply, MbapClient, NotMbap, Reply
from .modbus_errors import ConnectionException, ModbusIOException
from .modbus_stats import UNIT_BACKOFF_MIN

if TYPE_CHECKING:
    from .modbus import ModbusBus
    from .modbus_config import ModbusTcpLine

log = logging.getLogger(__name__)

# requests of one hold of the line (written WRITE_REQUESTS at a time, see agent.bus.mbap): it bounds what
# waits behind one dead unit in a gateway's queue (25 polls of a 4-block meter); one write
MAX_REQUESTS = 100
_COMBINE_FAILED_ONCE: set[tuple[str, int]] = set()  # endpoints whose last combined batch failed so
_NO_COMBINE: set[tuple[str, int]] = set()  # endpoints learnt not to take several units' requests at once
# (host, port, unit) -> units of the combined write it led that was met by silence (see settle_silent)
SILENT_WRITE: dict[tuple[str, int, int], int] = {}


def forget() -> None:
    _COMBINE_FAILED_ONCE.clear()
    _NO_COMBINE.clear()
    SILENT_WRITE.clear()


class Poll:
    """One device's poll waiting to be served with others."""

    __slots__ = ("blocks", "fut", "name", "timeout", "unit")

    def __init__(self, unit: int, blocks: Sequence[tuple[int, int, int]], timeout: float | None,
                 fut: asyncio.Future, name: str):
        self.unit, self.blocks, self.timeout, self.fut, self.name = unit, blocks, timeout, fut, name

    def done(self, data: list[bytes]) -> None:
        if not self.fut.done():
            self.fut.set_result(data)

    def fail(self, e: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(e)


class Waiting:
    """A line's queue of polls, the batch being served and the task serving them."""

    __slots__ = ("abort", "batch", "polls", "task")

    def __init__(self) -> None:
        self.polls: deque[Poll] = deque()
        self.batch: list[Poll] = []
        self.task: asyncio.Task | None = None
        self.abort = False  # every poll of the batch was cancelled: the task cancels its reads


def tcp_line(bus: ModbusBus) -> ModbusTcpLine:
    return cast("ModbusTcpLine", bus.config)


def combines(bus: ModbusBus, *, due_together: bool = False) -> bool:
    """Whether a poll that may go together should join the line's queue: the line is busy (or others
    wait), or ``due_together`` (other devices' polls fall due in this turn of the event loop: the queue's
    task, which starts in the next turn, sends them all in one write rather than this one alone first), and
    the endpoint was not learnt to refuse several units' requests at once."""
    q: Waiting | None = bus._waiting
    if not (due_together or bus._lock.locked() or (q is not None and q.polls)):
        return False
    cfg = tcp_line(bus)
    return (cfg.host, cfg.port) not in _NO_COMBINE


async def wait(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]], timeout: float | None) -> list[bytes]:
    q: Waiting | None = bus._waiting
    if q is None:
        q = bus._waiting = Waiting()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    poll = Poll(unit, blocks, timeout, loop.create_future(), task.get_name() if task is not None else "")
    q.polls.append(poll)
    if q.task is None:
        q.task = loop.create_task(_drain(bus, q), name=f"modbus-line:{bus.name}")
    try:
        return await poll.fut
    except asyncio.CancelledError:  # the poll's deadline or shutdown: the batch goes on without it,
        if poll.fut.done() and not poll.fut.cancelled():
            poll.fut.exception()  # failed as the deadline came: nobody will look at it
        if poll in q.batch and all(p.fut.done() for p in q.batch) and q.task is not None and not q.abort:
            q.abort = True  # unless nobody waits for it any more: then its reads are cancelled, as a poll's are
            q.task.cancel()
        raise


async def _drain(bus: ModbusBus, q: Waiting) -> None:
    try:
        while q.polls:
            try:
                async with bus._lock:
                    q.batch = _take(q)
                    if len(q.batch) == 1:
                        await serve_alone(bus, q.batch[0])
                    elif q.batch:
                        await _serve(bus, q.batch)
            except asyncio.CancelledError:
                if not q.abort:  # the line's task itself was cancelled (shutdown)
                    _abandon(bus, [*q.batch, *q.polls])
                    q.polls.clear()
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr] - every poll of the batch was cancelled
                q.polls.extendleft(reversed([p for p in q.batch if not p.fut.done()]))
            except Exception as e:  # noqa: BLE001 - a bug: the batch's polls fail with it (each logs it), not wait
                for p in q.batch:
                    err = RuntimeError(f"line {bus.name!r}: serving unit {p.unit}'s poll with others failed: "
                                       f"{type(e).__name__}: {e}")
                    err.__cause__ = e
                    p.fail(err)
            finally:
                q.batch = []
                q.abort = False  # an abort whose cancel was swallowed (connect's wait_for) ends with its batch
    finally:
        q.task = None


async def serve_alone(bus: ModbusBus, poll: Poll) -> None:
    """A waiting poll served on its own, under the line's lock."""
    if poll.fut.done():  # cancelled while it waited
        return
    try:
        poll.done(await reads.read_held(bus, poll.unit, poll.blocks, poll.timeout, name=poll.name))
    except Exception as e:  # noqa: BLE001 - the poll's own error, raised in its task
        poll.fail(e)


def _abandon(bus: ModbusBus, polls: list[Poll]) -> None:
    for p in polls:
        p.fail(BusUnavailable(f"line {bus.name!r} ({bus._where()}): unit {p.unit} not read (shutting down)"))


def _take(q: Waiting) -> list[Poll]:
    batch: list[Poll] = []
    n = 0
    while q.polls:
        p = q.polls[0]
        if p.fut.done():  # cancelled while waiting
            q.polls.popleft()
            continue
        if batch and (n + len(p.blocks) > MAX_REQUESTS or p.timeout != batch[0].timeout):
            break
        batch.append(q.polls.popleft())
        n += len(p.blocks)
    return batch


async def _serve(bus: ModbusBus, polls: list[Poll]) -> None:
    """Under the line's lock: the polls' requests in one write, each unit answered as its replies come
    in, or read again on its own once the write is over."""
    now = bus._clock()
    batch = []
    together = (tcp_line(bus).host, tcp_line(bus).port) not in _NO_COMBINE  # it may have been learnt meanwhile
    for p in polls:  # learnt, or failed, while it waited: served alone (one at a time), in this hold
        if together and reads.pipelines(bus, p.unit) and bus._unit(p.unit).next_probe <= now:
            batch.append(p)
        else:
            await serve_alone(bus, p)
    if len(batch) < 2:
        for p in batch:
            await serve_alone(bus, p)
        return
    try:
        await bus._ensure_open()
    except BusUnavailable as e:
        for p in batch:
            p.fail(BusUnavailable(str(e)))
        return
    client = bus._client
    assert isinstance(client, MbapClient)
    client.timeout = tcp_line(bus).timeout if batch[0].timeout is None else batch[0].timeout
    done = [False] * len(batch)

    def answered(k: int) -> None:  # in the reply callback: no wake-up of this task per poll
        done[k] = _answer(bus, batch[k], futs, starts[k])

    starts = [0]
    for p in batch:
        starts.append(starts[-1] + len(p.blocks))
    futs = client.send_batch([(p.unit, fc, a, c) for p in batch for fc, a, c in p.blocks],
                             [len(p.blocks) for p in batch], answered)
    try:
        await client.wait_batch()
    except asyncio.CancelledError:  # every poll of the batch was cancelled: nothing learnt
        bus._restart(lost=False)
        raise
    finally:
        outcomes: list[Reply | BaseException] = [] if all(done) else [
            f.exception() or f.result() if f.done() and not f.cancelled() else ModbusIOException("given up")
            for f in futs]
        client.end_batch()
    rest = [k for k in range(len(batch)) if not done[k]]
    for k in rest:
        st = bus._unit(batch[k].unit)
        st.transactions += len(batch[k].blocks)
        st.bytes_tx += 12 * len(batch[k].blocks)
    if rest:
        await _settle_rest(bus, batch, rest, outcomes, client.timeout)
    else:  # several units' requests at once answered: so were several of one unit's
        _clean(bus)


def _answer(bus: ModbusBus, p: Poll, futs: list[asyncio.Future], start: int) -> bool:
    """A poll of the write done as soon as its own replies are in, if they are usable (a slow line gives
    each unit the time it had one at a time); whether it was."""
    n = len(p.blocks)
    payloads: list[bytes] = []
    for f, (_, _, c) in zip(futs[start:start + n], p.blocks, strict=True):
        if f.exception() is not None:
            return False
        r: Reply = f.result()
        if r.exception_code or len(r.payload) != 2 * c:
            return False
        payloads.append(r.payload)
    st = bus._unit(p.unit)
    st.transactions += n
    st.bytes_tx += 12 * n
    st.bytes_rx += 5 * n + sum(map(len, payloads))
    st.ok(bus._clock())
    p.done(payloads)
    return True


async def _settle_rest(bus: ModbusBus, batch: list[Poll], rest: list[int], outcomes: list, tmo: float) -> None:
    """The polls of a finished write not answered cleanly: each fails as its own, or is read again alone."""
    cfg = tcp_line(bus)
    probe = cfg.pipeline == "auto"
    lost = any(isinstance(o, ConnectionException) for o in outcomes)
    silent = all(type(o) is ModbusIOException for o in outcomes)
    again: list[tuple[Poll, str | None]] = []  # (poll, why its group failed; None: garbled, not a sign)
    passed = _answered_after(outcomes, batch)
    starts = [0]
    for p in batch:
        starts.append(starts[-1] + len(p.blocks))
    timed_out = False
    not_mbap = True  # garbage fails every request outstanding; it is one error
    for k in rest:
        p = batch[k]
        n = len(p.blocks)
        outs = outcomes[starts[k]:starts[k + 1]]
        st = bus._unit(p.unit)
        # silent while the device went on to answer later units (a gateway whose device is gone), or the
        # whole write met by silence (its first unit, as its own group would be): a silent device's poll
        if (silent and k == 0) or (passed[k] and all(type(o) is ModbusIOException for o in outs)):
            timed_out = True
            st.timeouts += n
            st.wire_time += tmo
            st.fail(bus._clock(), base=UNIT_BACKOFF_MIN, cap=cfg.unit_backoff_max)
            if probe and silent:  # the device, or the endpoint refusing the write: its next poll alone tells
                SILENT_WRITE[(cfg.host, cfg.port, p.unit)] = len(batch)
            p.fail(DeviceTimeout(f"unit {p.unit} on {bus.name!r}: no reply within {tmo:g} s to {n} "
                                 f"requests sent together" + ("" if silent else " with other units'")))
            continue
        failed = [o for o in outs if isinstance(o, Exception)]
        if failed:
            garbled = sum(isinstance(o, GarbledReply) for o in failed)
            st.errors += garbled - sum(isinstance(o, NotMbap) for o in failed)
            if not_mbap and any(isinstance(o, NotMbap) for o in failed):  # counted once, on the first unit
                st.errors += 1
                not_mbap = False
            answered = n - len(failed)
            why = (f"connection closed after {len(outcomes)} requests in one write" if lost else
                   f"{answered} of {n} requests answered, sent in one write with {len(batch) - 1} other units'")
            again.append((p, None if garbled and not lost else why))
            continue
        replies: list[Reply] = outs
        st.bytes_rx += sum(5 + len(r.payload) for r in replies)
        # exception 6/10/11 to a later request of the write is a sign, but the first unit's first request is
        # the write's first (its exception is the unit's answer, as in a group of its own), and 10/11 to a
        # unit the gateway went past (it answered a later one) is the gateway's word on that unit
        lead = replies[0].exception_code
        if not (lead and (k == 0 or lead not in SIGNS or (lead != 6 and passed[k]))):
            signs = [r.exception_code for r in replies if r.exception_code in SIGNS]
            if signs:
                st.exceptions += len(signs)
                again.append((p, f"exception {signs[0]} ({EXCEPTION_NAMES[signs[0]]}) to a request sent with others"))
                continue
        bad = next(((r, b) for r, b in zip(replies, p.blocks, strict=True) if r.isError()), None)
        if bad is not None:
            st.exceptions += 1
            st.ok(bus._clock())  # it answered: alive
            p.fail(reads.exception_error(bus, p.unit, bad[0].exception_code, bad[1]))
            continue
        st.errors += 1  # a byte count off
        again.append((p, None))
    if timed_out or again:  # the device may still hold requests: not in front of the next ones
        bus._restart(lost=lost)
    answered_all = True
    for p, _why in again:
        if p.fut.done():  # cancelled meanwhile: nobody waits for it
            answered_all = False
            continue
        try:
            p.done(await reads.one_at_a_time(bus, p.unit, p.blocks, p.timeout, held=True))
        except Exception as e:  # noqa: BLE001 - the unit's own error, as its poll would raise it
            answered_all = False
            p.fail(e)
    if not probe or silent:  # silence: learnt, if so, when the first unit answers alone (see settle_silent)
        return
    signs = [(p, why) for p, why in again if why is not None]
    if not again:
        _clean(bus)
    elif signs and answered_all:
        _learn(bus, signs[0][1], len(batch), signs[0][0].unit, signs[0][0].name)
    else:  # neither answered nor a sign: the run of failed writes is broken
        _COMBINE_FAILED_ONCE.discard((cfg.host, cfg.port))


def _clean(bus: ModbusBus) -> None:
    cfg = tcp_line(bus)
    _COMBINE_FAILED_ONCE.discard((cfg.host, cfg.port))
    reads.group_answered(bus)


def settle_silent(bus: ModbusBus, unit: int, units: int, *, answered: bool) -> None:
    """``unit``'s poll after the combined write of ``units`` units it led was met by silence: answered alone,
    that write was the endpoint's refusal (a failed write, see _learn); unanswered, the unit is dead and
    nothing is learnt."""
    cfg = tcp_line(bus)
    if not answered:
        _COMBINE_FAILED_ONCE.discard((cfg.host, cfg.port))
        return
    task = asyncio.current_task()
    _learn(bus, "no reply to a write with other units', answered alone next", units, unit,
           task.get_name() if task is not None else "")


def _answered_after(outcomes: list, batch: list[Poll]) -> list[bool]:
    """For each poll of the batch, whether a later unit of the write got a normal reply."""
    out = [False] * len(batch)
    seen, i = False, len(outcomes)
    for k in range(len(batch) - 1, -1, -1):
        out[k] = seen
        n = len(batch[k].blocks)
        seen = seen or any(isinstance(o, Reply) and not o.exception_code for o in outcomes[i - n:i])
        i -= n
    return out


def who(unit: int, name: str) -> str:
    """The device a poll task (``poll:<device>``) reads, and its unit."""
    return f"device {name.removeprefix('poll:')!r} (unit {unit})" if name.startswith("poll:") else f"unit {unit}"


def _learn(bus: ModbusBus, why: str, units: int, unit: int, name: str) -> None:
    """A write failed so and its units answered one at a time: the second write in a row at the endpoint
    to fail so turns combining off there."""
    cfg = tcp_line(bus)
    endpoint = (cfg.host, cfg.port)
    if endpoint in _NO_COMBINE:
        return
    if endpoint not in _COMBINE_FAILED_ONCE:
        _COMBINE_FAILED_ONCE.add(endpoint)
        log.info("line %r (%s:%s): %s: %s; read again one at a time", bus.name, cfg.host, cfg.port,
                 who(unit, name), why)
        return
    _COMBINE_FAILED_ONCE.discard(endpoint)
    _NO_COMBINE.add(endpoint)
    log.warning("line %r (%s:%s): %s: %s (%d units' requests in one write; each answered one at a time); "
                "units at %s:%s are no longer sent in one write together", bus.name, cfg.host, cfg.port,
                who(unit, name), why, units, cfg.host, cfg.port)
