"""SunSpec discovery: find the ``SunS`` marker (at 40000, 0 or 50000), then walk the model chain."""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import DeviceException, ModbusLine, ProtocolError

from .models import BASES, END_ID, SUNS

MAX_MODELS = 64  # a chain longer than this is garbage, not a device


@dataclass(frozen=True, slots=True)
class Found:
    id: int
    address: int  # of the model's ID register
    length: int  # L: registers after ID and L


async def find_base(bus: ModbusLine, unit: int, *, timeout: float | None = None) -> int:
    """The base register of the SunSpec map; ProtocolError when no base holds ``SunS``."""
    for base in BASES:
        try:
            regs = await bus.read_registers(unit, fc=3, address=base, count=2, timeout=timeout)
        except DeviceException:  # illegal address: not here
            continue
        if tuple(regs) == SUNS:
            return base
    raise ProtocolError(f"unit {unit}: no SunSpec marker 'SunS' at {', '.join(map(str, BASES))}")


async def walk(bus: ModbusLine, unit: int, base: int, *, timeout: float | None = None) -> list[Found]:
    """Every model after the marker at ``base``, up to the end marker (ID 0xFFFF)."""
    out: list[Found] = []
    addr = base + 2
    for _ in range(MAX_MODELS):
        mid, length = await bus.read_registers(unit, fc=3, address=addr, count=2, timeout=timeout)
        if mid == END_ID or (mid == 0 and length == 0):
            return out
        out.append(Found(mid, addr, length))
        addr += 2 + length
        if addr > 0xFFFF:
            break
    raise ProtocolError(f"unit {unit}: SunSpec model chain from {base} has no end marker")


async def discover(bus: ModbusLine, unit: int, *, base: int | None = None,
                   timeout: float | None = None) -> tuple[int, list[Found]]:
    b = base if base is not None else await find_base(bus, unit, timeout=timeout)
    if base is not None:
        regs = await bus.read_registers(unit, fc=3, address=b, count=2, timeout=timeout)
        if tuple(regs) != SUNS:
            raise ProtocolError(f"unit {unit}: no SunSpec marker 'SunS' at {b}")
    return b, await walk(bus, unit, b, timeout=timeout)
