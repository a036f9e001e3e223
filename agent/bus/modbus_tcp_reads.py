"""A device's register blocks of one poll on a ``modbus_tcp`` line: together or one after another.

Modbus TCP lets a client keep several transactions outstanding on one connection, matched by
transaction id, and many servers queue them. Many others take one request at a time: a small
embedded stack (pymodbus's own server among them) answers the first request of a TCP segment and
drops the rest, some ignore such a write altogether, some close the connection, some answer
exception 6 (busy), a gateway 10 or 11.

``pipeline = "auto"`` (the default) sends a unit's blocks together while its last poll got normal
replies; after any failure of the unit its blocks go one at a time (a chain that stops at the first
failure, so a dead unit behind a queueing gateway holds the line one timeout per poll) until a poll
succeeds again. When a group fails in any way but silence, a garbled reply or a cancellation (a later
request unanswered, the connection closed, exception 6/10/11 to a later request), the
connection is restarted and the same blocks are read again at once one at a time, in the same poll
and the same hold of the line. If that succeeds for the second group in a row at the endpoint (host
and port: taking several requests is the gateway's or the device's TCP stack's property), it is read
one request at a time for the life of the process and one warning says so (a single failed group: a
lost reply, a reboot, a network blip, teaches nothing). If the re-read fails too, the device is
failing, not the pipelining: nothing is learnt and the re-read's error is the poll's. No reply at all
(a dead device, or one that ignores a write of several requests) fails the poll as a silent unit's
(one timeout, its own error); when the unit's next poll, one at a time, is answered, that counts as
a failed group of the endpoint. A garbled reply is a ProtocolError (retried,
counted in errors), a cancellation (the poll's deadline, shutdown) teaches nothing.
``pipeline = true`` sends a unit's blocks together while its last poll succeeded and learns nothing;
``false`` never sends them together. Several units' polls that wait for the busy line go out in one
write, each unit keeping these rules (agent.bus.modbus_tcp_group).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..contract.lines import POLLS_DUE_TOGETHER
from ..errors import DeviceException, DeviceTimeout, ProtocolError
from . import modbus_tcp_group
from .mbap import EXCEPTION_NAMES, SIGNS, Checked, GarbledReply, MbapClient
from .modbus_errors import ConnectionException, ModbusIOException

if TYPE_CHECKING:
    from .modbus import ModbusBus

log = logging.getLogger(__name__)

_ONE_AT_A_TIME: set[tuple[str, int]] = set()  # endpoints (host, port) learnt to take one request at a time
_FAILED_ONCE: set[tuple[str, int]] = set()  # endpoints whose last group failed (the re-read answered)
_FAILING: set[tuple[str, int, int]] = set()  # (host, port, unit) whose last poll failed: read one at a time
# (host, port, unit) whose last poll was a group met by silence: the poll failed as a silent unit's does
# (one timeout, an error naming the unit); if its next poll, one at a time, is answered, that counts as
# a failed group
_SILENT: set[tuple[str, int, int]] = set()


def forget() -> None:
    """Forget everything learnt this run (tests)."""
    _ONE_AT_A_TIME.clear()
    _FAILED_ONCE.clear()
    _FAILING.clear()
    _SILENT.clear()
    modbus_tcp_group.forget()


class _GroupFailed(Exception):
    """A group failed in a way that one request at a time might not (the connection was restarted)."""

    def __init__(self, why: str, *, lost: bool = False):
        super().__init__(why)
        self.why, self.lost = why, lost


def pipelines(bus: ModbusBus, unit: int) -> bool:
    """Whether ``unit``'s blocks go out together (the line's ``pipeline``, what was learnt, the unit's
    last poll)."""
    cfg = modbus_tcp_group.tcp_line(bus)
    if cfg.pipeline is False or (cfg.host, cfg.port, unit) in _FAILING:
        return False
    return cfg.pipeline is True or (cfg.host, cfg.port) not in _ONE_AT_A_TIME



async def read_tcp_blocks(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]],
                          timeout: float | None) -> list[bytes]:
    cfg = modbus_tcp_group.tcp_line(bus)
    key = (cfg.host, cfg.port, unit)
    silent_before = key in _SILENT
    _SILENT.discard(key)
    # it led a combined write met by silence: this poll tells why (unless it is skipped, backed off)
    silent_write = modbus_tcp_group.SILENT_WRITE.pop(key, 0) if not bus.unit_available(unit) else 0
    try:
        if not pipelines(bus, unit):
            data = await one_at_a_time(bus, unit, blocks, timeout)
            if silent_before:  # silent to the group, answering one at a time
                _settle(bus, unit, _GroupFailed(f"no reply to {len(blocks)} requests in one write"))
        elif modbus_tcp_group.combines(bus, due_together=POLLS_DUE_TOGETHER.get()):
            # the line is busy, or free with other devices' polls falling due in this turn of the loop: sent
            # with the other polls waiting for it (a free line's serves them one turn later, all in one write)
            data = await modbus_tcp_group.wait(bus, unit, blocks, timeout)
        else:
            async with bus._lock:  # the group and its re-read in one hold: no other poll waits in between
                data = await read_held(bus, unit, blocks, timeout)
    except BaseException as e:  # any failure, a cancellation too: the next poll goes one at a time
        _FAILING.add(key)
        if silent_write and not isinstance(e, asyncio.CancelledError):
            modbus_tcp_group.settle_silent(bus, unit, silent_write, answered=False)
        raise
    _FAILING.discard(key)
    if silent_write:
        modbus_tcp_group.settle_silent(bus, unit, silent_write, answered=True)
    return data


async def read_held(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]], timeout: float | None,
                *, name: str | None = None) -> list[bytes]:
    cfg = modbus_tcp_group.tcp_line(bus)
    if not pipelines(bus, unit):  # learnt while this poll waited for the line
        return await one_at_a_time(bus, unit, blocks, timeout, held=True)
    try:
        data = await _together(bus, unit, blocks, timeout, probe=cfg.pipeline == "auto")
    except _GroupFailed as g:  # read them again at once; if that fails the device is failing
        data = await one_at_a_time(bus, unit, blocks, timeout, held=True)
        _settle(bus, unit, g, name=name)
    else:
        group_answered(bus)
    return data


def group_answered(bus: ModbusBus) -> None:
    """Several requests at once were answered at the endpoint: a run of failed groups there is broken."""
    cfg = modbus_tcp_group.tcp_line(bus)
    _FAILED_ONCE.discard((cfg.host, cfg.port))


def exception_error(bus: ModbusBus, unit: int, code: int, block: tuple[int, int, int]) -> DeviceException:
    """The unit's exception reply to a block, as its poll raises it."""
    fc, address, count = block
    return DeviceException(f"unit {unit} on {bus.name!r} answered exception {code} "
                           f"({EXCEPTION_NAMES.get(code, 'unknown')}) to FC{fc:02d} {address}+{count}", code=code)


def mark_silent(bus: ModbusBus, unit: int) -> None:
    """``unit``'s group was met by silence: if its next poll, one at a time, is answered, that is a failed group."""
    cfg = modbus_tcp_group.tcp_line(bus)
    _SILENT.add((cfg.host, cfg.port, unit))


def _settle(bus: ModbusBus, unit: int, g: _GroupFailed, *, name: str | None = None) -> None:
    """The group failed and the same blocks read one at a time were answered: learn when it is the second
    group in a row at this endpoint to fail so (one lost reply, a reboot or a network blip teaches nothing)."""
    cfg = modbus_tcp_group.tcp_line(bus)
    endpoint = (cfg.host, cfg.port)
    if endpoint in _ONE_AT_A_TIME:
        return
    if endpoint not in _FAILED_ONCE:
        _FAILED_ONCE.add(endpoint)
        log.info("line %r (%s:%s): unit %s: %s; read again one at a time", bus.name, cfg.host, cfg.port, unit, g.why)
        return
    _FAILED_ONCE.discard(endpoint)
    _ONE_AT_A_TIME.add(endpoint)
    if name is None:
        task = asyncio.current_task()
        name = task.get_name() if task is not None else ""
    device = modbus_tcp_group.who(unit, name)
    log.warning("line %r (%s:%s): %s does not take several requests at once (%s; read again one at a time, "
                "it answered); requests to %s:%s are sent one at a time from now on (pipeline = false on the "
                "line says so up front)", bus.name, cfg.host, cfg.port, device, g.why, cfg.host, cfg.port)


def _failed(bus: ModbusBus, why: str, *, lost: bool = False) -> _GroupFailed:
    """Restart the connection (a lost one counts as a drop; an open one is closed so nothing the device
    kept of the group answers or holds its queue later). Called under the line's lock."""
    bus._restart(lost=lost)
    return _GroupFailed(why, lost=lost)


async def _together(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]], timeout: float | None,
                    *, probe: bool) -> list[bytes]:
    n = len(blocks)

    async def call(c: MbapClient) -> Checked:
        st = bus._unit(unit)
        st.transactions += n - 1  # all went out; _once counts one
        try:
            replies = await c.read_many(unit, blocks)
        except asyncio.CancelledError:  # the poll's deadline or shutdown: nothing learnt
            if c.answered < n:
                bus._restart(lost=False)
            raise
        except GarbledReply as e:  # noise, not a sign: retried while the unit is healthy
            st.errors += 1
            raise ProtocolError(f"unit {unit} on {bus.name!r}: garbled reply to requests sent together: {e}") from None
        except ConnectionException as e:
            if probe:
                raise _failed(bus, f"connection closed after {n} requests in one write: {e}", lost=True) from None
            raise
        except ModbusIOException:
            if probe and not c.answered:  # a dead device, or one that ignores such a write: see _SILENT
                st.timeouts += n
                bus._restart(lost=False)
                mark_silent(bus, unit)
                raise DeviceTimeout(f"unit {unit} on {bus.name!r}: no reply within {c.timeout:g} s to {n} requests "
                                    f"sent together") from None
            if probe:
                st.timeouts += n - c.answered  # requests that went unanswered
                raise _failed(bus, f"{c.answered} of {n} requests in one write answered") from None
            st.timeouts += n - c.answered
            bus._restart(lost=False)  # the device may still hold the unanswered requests: not in front of the next poll
            if not c.answered:
                raise DeviceTimeout(f"unit {unit} on {bus.name!r}: no reply within {c.timeout:g} s") from None
            raise DeviceTimeout(f"unit {unit} on {bus.name!r} answered {c.answered} of {n} requests sent together "
                                f"(pipeline = true); it may take one request at a time") from None
        if probe and not replies[0].isError():
            signs = [r.exception_code for r in replies[1:] if r.exception_code in SIGNS]
            if signs:
                st.exceptions += len(signs)
                raise _failed(bus, f"exception {signs[0]} ({EXCEPTION_NAMES[signs[0]]}) to a request sent with others")
        for rr, (fc, address, count) in zip(replies, blocks, strict=True):
            if rr.isError():
                st.exceptions += 1
                raise exception_error(bus, unit, rr.exception_code, (fc, address, count))
            if len(rr.payload) != 2 * count:
                st.errors += 1
                raise ProtocolError(f"unit {unit} on {bus.name!r}: asked for {count} registers at {address}, "
                                    f"got {len(rr.payload) // 2}")
        return Checked(r.payload for r in replies)

    return list(await bus._transact(unit, call, timeout=timeout, rx=_rx(blocks), tx=8 * n, held=True))


async def one_at_a_time(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]],
                        timeout: float | None, *, held: bool = False) -> list[bytes]:
    """Each request written as the previous reply is taken (MbapClient.read_chain), under one hold of the line."""
    done: list[bytes] = []

    async def chain(c: MbapClient) -> Any:
        before, rr, stopped = len(done), None, True
        try:  # a retry (after a garbled reply) goes on from the block that failed
            rr = await c.read_chain(unit, blocks[before:], done)
            stopped = rr is not None  # an exception reply: its request is not in done
        finally:  # requests sent beyond the one _once counts; a failure's request is not in done
            bus._unit(unit).transactions += len(done) - before - (0 if stopped else 1)
        return Checked() if rr is None else rr

    await bus._transact(unit, chain, timeout=timeout, rx=_rx(blocks), tx=8 * len(blocks), held=held)
    for data, (_, address, count) in zip(done, blocks, strict=True):
        if len(data) != 2 * count:
            bus._unit(unit).errors += 1
            raise ProtocolError(f"unit {unit} on {bus.name!r}: asked for {count} registers at {address}, "
                                f"got {len(data) // 2}")
    return done


def _rx(blocks: Sequence[tuple[int, int, int]]) -> int:
    return sum(5 + 2 * c for _, _, c in blocks)
