"""Line kinds: how a transport package tells the core about a kind of ``[lines.NAME]`` table.

A package registers each kind as a :class:`LineKind` in the ``edge_agent.lines`` entry-point group
(the name is the config ``type``); the core validates the table with ``config_model`` and builds
the bus with ``factory(line_name, config)`` when a device first asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from .lazy import LazyRef, Record

if TYPE_CHECKING:
    from .config import LineConfig

LINES_GROUP = "edge_agent.lines"

# Set by the scheduler during a device's read when other devices of its line and interval fall due in the
# same turn of the event loop and have not started their polls yet: a line that sends the polls waiting
# for it together (a Modbus TCP line) may then let this one wait for them rather than go out alone first.
POLLS_DUE_TOGETHER: ContextVar[bool] = ContextVar("polls_due_together", default=False)


class Bus(Protocol):
    """What every bus handle has; a family adds its own calls (see ``ModbusLine``, ``SerialPort``...)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...


class Buses(Protocol):
    """The configured lines, as a driver sees them (``DriverContext.buses``)."""

    def get(self, name: str) -> Any:
        """The bus handle of line ``name``, created on first use (it opens on first transfer)."""
        ...


class LineKind(Record):
    """``config_model`` and ``factory`` may be given as ``"module:attr"`` (imported when first read):
    a run on a plain config imports neither the model nor other kinds' code. The factory gets the
    validated model or its plain twin (same attributes)."""

    __slots__ = ("_config_model", "_factory", "summary")
    FIELDS = ("config_model", "factory", "summary")
    config_model: type[LineConfig] = LazyRef()  # type: ignore[assignment]
    factory: Callable[[str, Any], Bus] = LazyRef()  # type: ignore[assignment]  # (line name, config) -> bus

    def __init__(self, config_model: type[LineConfig] | str, factory: Callable[[str, Any], Bus] | str, summary: str):
        self._store(config_model=config_model, factory=factory, summary=summary)
