"""How the core finds drivers and simulators: entry-point discovery.

The driver contract itself (``Driver``, ``DriverSpec``, ``DriverContext``, ``Clock``...) is defined
in :mod:`agent.contract` and re-exported here for the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
from .contract.lazy import resolve
from .plugins import group_entry_points, load_group

__all__ = ["Clock", "Driver", "DriverCatalog", "DriverContext", "DriverFactory", "DriverSpec", "SimulatorSpec",
           "discover_simulators"]


class DriverCatalog:
    """The drivers installed in this environment, discovered through entry points.

    Built-in drivers register through the same group a third-party package would use. A driver's
    package is imported when its type is asked for (a config imports only the drivers it uses).
    """

    def __init__(self, specs: dict[str, DriverSpec], *, entries: dict | None = None):
        self._specs = dict(specs)
        self._entries = dict(entries or {})  # type -> entry point not loaded yet
        self._values = {t: f"{ep.module}:{ep.attr}" for t, ep in self._entries.items()}  # type -> "module:attr"

    @classmethod
    def discover(cls) -> DriverCatalog:
        return cls({}, entries={ep.name: ep for ep in group_entry_points(DRIVERS_GROUP)})

    @classmethod
    def from_references(cls, refs: Mapping[str, str]) -> DriverCatalog:
        """The drivers of ``refs`` (type -> ``"module:attr"``, what :meth:`references` gave a process
        that read the entry points): no entry-point scan, so ``importlib.metadata`` is not imported."""
        return cls({}, entries={t: _Reference(t, v) for t, v in refs.items()})

    def references(self, types: Iterable[str]) -> dict[str, str]:
        """``"module:attr"`` of each installed driver type of ``types`` (for :meth:`from_references`)."""
        return {t: self._values[t] for t in dict.fromkeys(types) if t in self._values}

    def get(self, type_: str) -> DriverSpec | None:
        ep = self._entries.pop(type_, None)
        if ep is not None:
            spec = ep.load()
            if not isinstance(spec, DriverSpec):
                raise TypeError(f"entry point {ep.name!r} ({ep.value}) in {DRIVERS_GROUP} is not a DriverSpec")
            if spec.type != type_:
                raise TypeError(f"entry point {type_!r} names driver type {spec.type!r}")
            self._specs[type_] = spec
        return self._specs.get(type_)

    def types(self) -> list[str]:
        return sorted({*self._specs, *self._entries})

    def __iter__(self):
        return iter([spec for t in self.types() if (spec := self.get(t)) is not None])


def discover_simulators() -> dict[str, SimulatorSpec]:
    return load_group(SIMULATORS_GROUP, SimulatorSpec)


class _Reference:
    """An entry point already read: its name and ``"module:attr"`` value, loaded on demand."""

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value
        self.module, _, self.attr = value.partition(":")

    def load(self) -> object:
        return resolve(self.value)
