"""The errors of a Modbus transaction inside a Modbus bus (the bus turns them into BusUnavailable,
DeviceTimeout or ProtocolError; none leaves it).

The agent's Modbus TCP client (agent.bus.mbap) raises these. pymodbus's clients, used for the RTU
framings, raise pymodbus's exceptions of the same names, which :func:`from_pymodbus` turns into these,
text and all ("Modbus Error: [Connection] ..."). So a gateway whose Modbus lines are all Modbus TCP
never imports pymodbus (its package loads 33 modules, its simulator and datastore among them).
"""

from __future__ import annotations

import sys


class ModbusException(Exception):
    """A Modbus transaction failed; ``str()`` reads as pymodbus's: ``Modbus Error: <string>``."""

    prefix = ""

    def __init__(self, string: str = "") -> None:
        self.string = f"{self.prefix}{string}"
        super().__init__(self.string)

    def __str__(self) -> str:
        return f"Modbus Error: {self.string}"


class ModbusIOException(ModbusException):
    """No reply, or none that can be used."""

    prefix = "[Input/Output] "


class ConnectionException(ModbusException):
    """The connection to the device or gateway is lost, or not there."""

    prefix = "[Connection] "


def from_pymodbus(e: BaseException) -> BaseException:
    """A pymodbus exception as the bus's own of the same kind (same text); anything else unchanged."""
    errors = sys.modules.get("pymodbus.exceptions")
    if errors is None or not isinstance(e, errors.ModbusException):
        return e
    kind = (ModbusIOException if isinstance(e, errors.ModbusIOException)
            else ConnectionException if isinstance(e, errors.ConnectionException) else ModbusException)
    out = kind.__new__(kind)
    ModbusException.__init__(out)  # the prefix is in pymodbus's text already
    out.string = e.string
    out.args = (e.string,)
    return out
