"""What a device driver is: the ``Driver`` protocol, what the core hands it, what a package exports.

A driver knows its device and nothing of MQTT, SQLite or scheduling. The core builds it from its
validated (frozen) config, calls ``open()`` once, ``read()`` once per poll, and ``close()`` at the
end. ``read()`` must not sleep to pace itself: the scheduler owns time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agent.model import Batch, MetricSpec, Sample

from .lazy import LazyRef, Record
from .lines import Buses

if TYPE_CHECKING:
    from .config import DeviceConfig

DRIVERS_GROUP = "edge_agent.drivers"
SIMULATORS_GROUP = "edge_agent.simulators"


@runtime_checkable
class Driver(Protocol):
    def metrics(self) -> Sequence[MetricSpec]:
        """Every metric this device can deliver, in a fixed order (their index is the local id)."""
        ...

    async def open(self) -> None: ...

    async def read(self) -> Sequence[Sample] | Batch:
        """One poll. Return samples, or a Batch whose ``series`` are local metric indexes."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ReportsEvents(Protocol):
    """A driver that finds events on the device (an AHU fault) hands them over after each poll: JSON
    bodies with a ``kind``, published on the gateway's ``event`` topic with ``device`` filled in."""

    def take_events(self) -> list[dict[str, Any]]: ...


class Clock:
    """Wall and monotonic time in one place, so tests and RTC-less boots can reason about both."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the core hands a driver factory."""

    gateway: str
    state_dir: Path
    buses: Buses  # get(line_name) -> the line's bus handle
    clock: Clock = field(default_factory=Clock)
    # register fn(mark): called right after each outbox commit; everything pollers submitted before
    # time.monotonic() == mark is committed (None: no pipeline, e.g. `edge-agent read`)
    on_commit: Callable[[Callable[[float], None]], None] | None = None


DriverFactory = Callable[["DeviceConfig", DriverContext], Driver]
MetricsLister = Callable[["DeviceConfig"], Sequence[MetricSpec]]  # a config -> its driver's metrics (DriverSpec)


class DriverSpec(Record):
    """What a driver package exports (as ``SPEC``) through the ``edge_agent.drivers`` entry points.

    ``config_model`` and ``factory`` may be given as ``"module:attr"``, imported when first read: a
    run that hands its drivers a plain config (:mod:`agent.contract.plain`) never imports the model.
    The factory is called with the validated model or with its plain twin (same attributes).

    ``metrics`` (optional, also ``"module:attr"``): what the driver built from a config would list as its
    metrics, without building it, in a module that imports no more than the config model does (no
    numpy, no bus, no device library); it rejects a config the factory would reject, with the same
    exception. Validation (agent.config.references) calls it instead of building the driver; a driver
    without one is built.
    """

    __slots__ = ("type", "_config_model", "_factory", "summary", "writable", "_metrics")
    FIELDS = ("type", "config_model", "factory", "summary", "writable", "metrics")
    config_model: type[DeviceConfig] = LazyRef()  # type: ignore[assignment]
    factory: DriverFactory = LazyRef()  # type: ignore[assignment]
    metrics: MetricsLister | None = LazyRef()  # type: ignore[assignment]

    def __init__(self, type: str, config_model: type[DeviceConfig] | str, factory: DriverFactory | str,
                 summary: str, writable: bool = False, metrics: MetricsLister | str | None = None):
        self._store(type=type, config_model=config_model, factory=factory, summary=summary, writable=writable,
                    metrics=metrics)


@dataclass(frozen=True, slots=True)
class SimulatorSpec:
    """A device simulator reachable as ``edge-agent simulate NAME``; ``command`` is a click command."""

    name: str
    summary: str
    command: Any  # click.Command
    start: Callable[..., Awaitable[Any]] | None = None  # programmatic start for the demo and tests
