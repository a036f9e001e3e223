"""The config mixin of a device on a Modbus line: ``line`` + ``unit``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .config import LineDevice
from .modbus import MODBUS_BUS


class ModbusDevice(LineDevice):
    """A device on a Modbus line (RTU, TCP, or RTU through a TCP gateway): ``line`` + ``unit``."""

    BUS: ClassVar[str | None] = MODBUS_BUS

    line: str = Field(description="Name of a Modbus line (modbus_rtu, modbus_tcp or modbus_rtu_over_tcp).")
    unit: int = Field(1, ge=1, le=255, description="Modbus unit id (slave address).")
