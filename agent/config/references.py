"""Third validation pass: keys that name a device's metrics, checked against what its driver delivers.

A metric list belongs to the driver: each enabled or disabled device's driver lists it from the
device's config (``DriverSpec.metrics``, which builds nothing and imports no more than the config
model), or, for a driver without such a list, is built here (building never opens a port or touches
a device: buses open on first use) and asked for its metrics. The same checks are not repeated at
start-up: processing and the site controller trust this pass.
"""

from __future__ import annotations

from ..bus import BusPool
from ..contract import DriverContext
from ..driver import DriverCatalog
from .schema import CoreConfig
from .sections import DeviceFacts, registered_sections, section_problems


def reference_problems(config: CoreConfig, catalog: DriverCatalog) -> list[tuple[tuple, str]]:
    ctx: DriverContext | None = None  # made for the first driver that is built
    problems: list[tuple[tuple, str]] = []
    facts = DeviceFacts(config.devices)
    for i, dev in enumerate(config.devices):
        spec = catalog.get(dev.type)
        if spec is None:  # reported by the first pass
            continue
        facts.writable[dev.name] = spec.writable
        try:
            if (listed := spec.metrics) is not None:
                facts.metrics[i] = list(listed(dev))
                continue
            if ctx is None:
                ctx = DriverContext(gateway=config.gateway.id, state_dir=config.gateway.state_dir,
                                    buses=BusPool(config.lines))
            facts.metrics[i] = list(spec.factory(dev, ctx).metrics())
        except Exception as e:  # noqa: BLE001 - a driver rejecting its config is a config problem
            problems.append((("devices", i), f"driver {dev.type!r} cannot be set up: {e}"))
    return problems + section_problems(config, registered_sections(), facts)
