"""A driver opened on a simulator for the span of a ``with`` block (tests/drivers/): built through the
conformance kit as the agent builds it, closed with its bus pool afterwards, even on failure; and a
Modbus simulator served on a free port over TCP or RTU (``serve_modbus``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agent.bus.modbus_config import ModbusRtuLine, ModbusTcpLine
from agent.simkit.conformance import SimDevice, build_driver
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
