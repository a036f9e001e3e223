"""A device's register blocks of one poll on a ``modbus_tcp`` line: together or one after another.

Modbus TCP lets a client keep several transactions outstanding on one connection, matched by
transaction id, and many servers queue them. Many others take one request at a time: a small
embedded stack (pymodbus's own server among them) answers the first request of a TCP segment and
drops the rest, some close the connection, some answer exception 6 (busy). ``pipeline = "auto"``
(the default) sends a poll's blocks together until the device shows it does not take them: a later
request of the group unanswered while an earlier one was answered, the connection lost right after
the write, or a busy reply. The blocks are then read again at once one at a time on a fresh
connection (the poll does not fail), the unit is read one request at a time for the life of the
process (remembered per host, port and unit), and a warning is logged once. The sign costs one
reply timeout, once per device. ``pipeline = true`` always sends them together, ``false`` never.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from pymodbus.exceptions import ConnectionException, ModbusIOException

from ..errors import DeviceException, DeviceTimeout, ProtocolError
from .mbap import EXCEPTION_NAMES, Checked, MbapClient
from .modbus_config import ModbusTcpLine

if TYPE_CHECKING:
    from .modbus import ModbusBus

log = logging.getLogger(__name__)

_BUSY = 6  # Modbus exception "server device busy"
# (host, port, unit) that take one request at a time, learnt this run (a gateway's units may differ)
_ONE_AT_A_TIME: set[tuple[str, int, int]] = set()


class NotPipelined(Exception):
    """The device showed it does not take several requests at once."""


def pipelines(bus: ModbusBus, unit: int) -> bool:
    """Whether ``unit``'s blocks go out together (the line's ``pipeline`` and what was learnt)."""
    cfg = _line(bus)
    return cfg.pipeline is True or (cfg.pipeline == "auto" and (cfg.host, cfg.port, unit) not in _ONE_AT_A_TIME)


def _line(bus: ModbusBus) -> ModbusTcpLine:
    return cast(ModbusTcpLine, bus.config)


async def read_tcp_blocks(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]],
                          timeout: float | None) -> list[bytes]:
    if pipelines(bus, unit):
        probe = _line(bus).pipeline == "auto"
        try:
            return await _together(bus, unit, blocks, timeout, probe=probe)
        except NotPipelined:
            pass  # learnt, said and the connection restarted (under the line's lock): read them again
    return await _one_at_a_time(bus, unit, blocks, timeout)


def _refused(bus: ModbusBus, unit: int, why: str, *, lost: bool = False) -> NotPipelined:
    """Remember and say that ``unit`` takes one request at a time; restart the connection (a lost one
    counts as a drop; an open one is closed so nothing the device kept of the group answers later).
    Called under the line's lock."""
    _learn(bus, unit, why)
    bus._restart(lost=lost)
    return NotPipelined(why)


def _learn(bus: ModbusBus, unit: int, why: str) -> None:
    cfg = _line(bus)
    _ONE_AT_A_TIME.add((cfg.host, cfg.port, unit))
    task = asyncio.current_task()
    name = task.get_name() if task is not None else ""
    device = f"device {name.removeprefix('poll:')!r} (unit {unit})" if name.startswith("poll:") else f"unit {unit}"
    log.warning("line %r (%s:%s): %s does not take several requests at once (%s); its blocks are read one "
                "at a time from now on (pipeline = false on the line says so up front)",
                bus.name, cfg.host, cfg.port, device, why)


async def _together(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]], timeout: float | None,
                    *, probe: bool) -> list[bytes]:
    n = len(blocks)

    async def call(c: MbapClient) -> Checked:
        st = bus._unit(unit)
        st.transactions += n - 1  # all went out; _once counts one
        try:
            replies = await c.read_many(unit, blocks)
        except ConnectionException as e:
            if probe:
                raise _refused(bus, unit, f"connection closed after {n} requests in one write: {e}", lost=True) from None
            raise
        except ModbusIOException:
            if not c.answered:
                raise  # nothing answered: a silent unit, as for a single read
            st.timeouts += n - c.answered  # requests never answered
            if probe:  # the poll goes on one request at a time: no failure
                raise _refused(bus, unit, f"{c.answered} of {n} requests in one write answered") from None
            raise DeviceTimeout(f"unit {unit} on {bus.name!r} answered {c.answered} of {n} requests sent together "
                                f"(pipeline = true); it may take one request at a time") from None
        except asyncio.CancelledError:  # the poll's own deadline came first: learn all the same
            if probe and 0 < c.answered < n:
                _refused(bus, unit, f"{c.answered} of {n} requests in one write answered before the poll's timeout")
            raise
        if probe and not replies[0].isError() and any(r.exception_code == _BUSY for r in replies[1:]):
            st.exceptions += sum(r.exception_code == _BUSY for r in replies)
            raise _refused(bus, unit, "busy (exception 6) to a request sent with others")
        for rr, (fc, address, count) in zip(replies, blocks, strict=True):
            if rr.isError():
                st.exceptions += 1
                code = rr.exception_code
                raise DeviceException(f"unit {unit} on {bus.name!r} answered exception {code} "
                                      f"({EXCEPTION_NAMES.get(code, 'unknown')}) to FC{fc:02d} {address}+{count}",
                                      code=code)
            if len(rr.payload) != 2 * count:
                st.errors += 1
                raise ProtocolError(f"unit {unit} on {bus.name!r}: asked for {count} registers at {address}, "
                                    f"got {len(rr.payload) // 2}")
        return Checked(r.payload for r in replies)

    return list(await bus._transact(unit, call, timeout=timeout, rx=_rx(blocks), tx=8 * n))


async def _one_at_a_time(bus: ModbusBus, unit: int, blocks: Sequence[tuple[int, int, int]],
                         timeout: float | None) -> list[bytes]:
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

    await bus._transact(unit, chain, timeout=timeout, rx=_rx(blocks), tx=8 * len(blocks))
    for data, (_, address, count) in zip(done, blocks, strict=True):
        if len(data) != 2 * count:
            bus._unit(unit).errors += 1
            raise ProtocolError(f"unit {unit} on {bus.name!r}: asked for {count} registers at {address}, "
                                f"got {len(data) // 2}")
    return done


def _rx(blocks: Sequence[tuple[int, int, int]]) -> int:
    return sum(5 + 2 * c for _, _, c in blocks)
