"""The config mixin of a device on a ``serial`` line (a model: pydantic); the port handle is in :mod:`.serial`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .config import LineDevice
from .serial import SERIAL_BUS


class SerialDevice(LineDevice):
    """A device on a ``serial`` line: the line alone addresses it (one device per port)."""

    BUS: ClassVar[str | None] = SERIAL_BUS

    line: str = Field(description="Name of a `serial` line.")
