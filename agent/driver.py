"""How the core finds drivers and simulators: entry-point discovery.

The driver contract itself (``Driver``, ``DriverSpec``, ``DriverContext``, ``Clock``...) is defined
in :mod:`agent.contract` and re-exported here for the core.
"""

from __future__ import annotations

from importlib.metadata import entry_points

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
        specs: dict[str, DriverSpec] = {}
        for ep in entry_points(group=DRIVERS_GROUP):
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
    for ep in entry_points(group=SIMULATORS_GROUP):
        spec = ep.load()
        if not isinstance(spec, SimulatorSpec):
            raise TypeError(f"simulator entry point {ep.name!r} ({ep.value}) is not a SimulatorSpec")
        sims[ep.name] = spec
    return dict(sorted(sims.items()))
