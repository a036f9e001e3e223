"""How the core finds drivers and simulators: entry-point discovery.

The driver contract itself (``Driver``, ``DriverSpec``, ``DriverContext``, ``Clock``...) is defined
in :mod:`agent.contract` and re-exported here for the core.
"""

from __future__ import annotations

from .contract.driver import (
    DRIVERS_GROUP,
    SIMULATORS_GROUP,
    Clock,
    Driver,
    DriverContext,
    DriverFactory,
    DriverSpec,
    SimulatorSpec,
)
from .plugins import load_group

__all__ = ["Clock", "Driver", "DriverCatalog", "DriverContext", "DriverFactory", "DriverSpec", "SimulatorSpec",
           "discover_simulators"]


class DriverCatalog:
    """The drivers installed in this environment, discovered through entry points.

    Built-in drivers register through the same group a third-party package would use.
    """

    def __init__(self, specs: dict[str, DriverSpec]):
        self._specs = dict(specs)

    @classmethod
    def discover(cls) -> DriverCatalog:
        specs = load_group(DRIVERS_GROUP, DriverSpec)
        for name, spec in specs.items():
            if spec.type != name:
                raise TypeError(f"entry point {name!r} names driver type {spec.type!r}")
        return cls(specs)

    def get(self, type_: str) -> DriverSpec | None:
        return self._specs.get(type_)

    def types(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self):
        return iter(self._specs[t] for t in self.types())


def discover_simulators() -> dict[str, SimulatorSpec]:
    return load_group(SIMULATORS_GROUP, SimulatorSpec)
