"""Line kinds: how a transport package tells the core about a kind of ``[lines.NAME]`` table.

A package registers each kind as a :class:`LineKind` in the ``edge_agent.lines`` entry-point group
(the name is the config ``type``); the core validates the table with ``config_model`` and builds
the bus with ``factory(line_name, config)`` when a device first asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .config import LineConfig

LINES_GROUP = "edge_agent.lines"


class Bus(Protocol):
    """What every bus handle has; a family adds its own calls (see ``ModbusLine``, ``SerialPort``...)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...


class Buses(Protocol):
    """The configured lines, as a driver sees them (``DriverContext.buses``)."""

    def get(self, name: str) -> Any:
        """The bus handle of line ``name``, created on first use (it opens on first transfer)."""
        ...


@dataclass(frozen=True, slots=True)
class LineKind:
    config_model: type[LineConfig]
    factory: Callable[[str, Any], Bus]  # (line name, config) -> bus
    summary: str
