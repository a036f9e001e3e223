"""The driver contract: what a device driver is, and how the core finds and builds one.

A driver knows its device and nothing of MQTT, SQLite or scheduling. The core builds it from its
validated (frozen) config, calls ``open()`` once, ``read()`` once per poll, and ``close()`` at the
end. ``read()`` must not sleep to pace itself: the scheduler owns time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .model import Batch, MetricSpec, Sample

if TYPE_CHECKING:
    from .config.schema import DeviceConfig

ENTRY_POINT_GROUP = "edge_agent.drivers"
SIMULATOR_GROUP = "edge_agent.simulators"


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
class WritableDriver(Driver, Protocol):
    async def write(self, point: str, value: Any) -> Any:
        """Write one declared point. The command layer has already checked authority and bounds."""
        ...


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
    buses: Any  # agent.bus.BusPool: get(line_name) -> bus handle
    clock: Clock = field(default_factory=Clock)
    # register fn(mark): called right after each outbox commit; everything pollers submitted before
    # time.monotonic() == mark is committed (None: no pipeline, e.g. `edge-agent read`)
    on_commit: Callable[[Callable[[float], None]], None] | None = None


DriverFactory = Callable[["DeviceConfig", DriverContext], Driver]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """What a driver package exports (as ``SPEC``) through the ``edge_agent.drivers`` entry points."""

    type: str
    config_model: type[DeviceConfig]
    factory: DriverFactory
    summary: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class SimulatorSpec:
    """A device simulator reachable as ``edge-agent simulate NAME``; ``command`` is a click command."""

    name: str
    summary: str
    command: Any  # click.Command
    start: Callable[..., Awaitable[Any]] | None = None  # programmatic start for the demo and tests


class DriverCatalog:
    """The drivers installed in this environment, discovered through entry points.

    Built-in drivers register through the same group a third-party package would use.
    """

    def __init__(self, specs: dict[str, DriverSpec]):
        self._specs = dict(specs)

    @classmethod
    def discover(cls) -> DriverCatalog:
        specs: dict[str, DriverSpec] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            spec = ep.load()
            if not isinstance(spec, DriverSpec):
                raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a DriverSpec")
            if spec.type != ep.name:
                raise TypeError(f"entry point {ep.name!r} names driver type {spec.type!r}")
            specs[spec.type] = spec
        return cls(specs)

    def get(self, type_: str) -> DriverSpec | None:
        return self._specs.get(type_)

    def types(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self):
        return iter(self._specs[t] for t in self.types())


def discover_simulators() -> dict[str, SimulatorSpec]:
    sims: dict[str, SimulatorSpec] = {}
    for ep in entry_points(group=SIMULATOR_GROUP):
        spec = ep.load()
        if not isinstance(spec, SimulatorSpec):
            raise TypeError(f"simulator entry point {ep.name!r} ({ep.value}) is not a SimulatorSpec")
        sims[ep.name] = spec
    return dict(sorted(sims.items()))
