"""A driver opened on a simulator for the span of a ``with`` block (tests/drivers/): built through the
conformance kit as the agent builds it, closed with its bus pool afterwards, even on failure; a
Modbus simulator served on a free port over TCP or RTU (``serve_modbus``); one fault on a serial meter
line and the read after it (``line_faults``, ``fault_then_read``); bytes ahead of every reply
(``replies_after``); every reply in two pieces (``replies_in_two``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.bus.modbus_config import ModbusRtuLine, ModbusTcpLine
from agent.contract import DeviceTimeout, ProtocolError
from agent.simkit.conformance import SimDevice, build_driver
from agent.simkit.meter_line import Fault
from tests.sim_thread import free_port


@asynccontextmanager
async def opened(spec: Any, sim: SimDevice, state_dir: Path, *,
                 prepare: Callable[[Any], None] | None = None) -> AsyncIterator[Any]:
    """``async with opened(SPEC, SimDevice(...), tmp_path / "state") as driver:``; ``prepare(driver)``
    runs before ``open()`` (e.g. to give the driver a clock)."""
    driver, pool = build_driver(spec, sim, state_dir)
    try:
        if prepare is not None:
            prepare(driver)
        await driver.open()
        yield driver
    finally:
        await driver.close()
        await pool.close()


async def serve_modbus(start: Callable[..., Awaitable[Any]], sim: Any, *,
                       rtu: bool = False) -> tuple[Any, ModbusTcpLine | ModbusRtuLine]:
    """Serve ``sim`` with its package's ``start`` on a free port, Modbus TCP or RTU over a socket; the
    server's handle and the line that reaches it."""
    port = free_port()
    if rtu:
        handle = await start(tcp=None, rtu_socket=f"127.0.0.1:{port}", sim=sim)
        return handle, ModbusRtuLine(type="modbus_rtu", port=f"socket://127.0.0.1:{port}", baudrate=115200)
    handle = await start(tcp=f"127.0.0.1:{port}", sim=sim)
    return handle, ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port)


def line_faults(refused: type[Exception]) -> list[tuple[Fault, type[Exception] | None]]:
    """The faults of a simulated meter line and what a read meets: garbage before the frame is survived,
    a cut or missing reply times out, a bad checksum is a protocol error, an error reply is the
    protocol's own ``refused`` error."""
    return [(Fault.GARBAGE, None), (Fault.TRUNCATE, DeviceTimeout), (Fault.BAD_CHECKSUM, ProtocolError),
            (Fault.ERROR_REPLY, refused), (Fault.SILENCE, DeviceTimeout)]


def replies_after(sim: Any, prefix: bytes) -> None:
    """From now on every reply ``sim`` writes comes after ``prefix`` on the line (garbage, or an answer
    to an earlier request)."""
    send = sim.write_raw
    sim.write_raw = lambda data: send(prefix + data)


def replies_in_two(sim: Any, cut: Callable[[bytes], int], pause: float = 0.5) -> None:
    """From now on every reply ``sim`` writes goes out as ``data[:cut(data)]`` and, ``pause`` seconds
    later, the rest (a reply the reader meets half arrived, as on a slow line or behind a DTU)."""
    send = sim.write_raw

    def write(data: bytes) -> None:
        at = cut(data)
        send(data[:at])
        asyncio.get_running_loop().call_later(pause, send, data[at:])
    sim.write_raw = write


async def fault_then_read(driver: Any, sim: Any, fault: Fault, error: type[Exception] | None,
                          read: Callable[[Any], Awaitable[Any]], expected: Any) -> None:
    """One ``fault`` on the line: the read raises ``error`` (or survives the fault when None), and the
    next poll reads again; ``read(driver)`` gives what is compared with ``expected``."""
    sim.sim_faults.append(fault)
    if error is None:
        assert await read(driver) == expected
    else:
        with pytest.raises(error):
            await driver.read()
    assert await read(driver) == expected
