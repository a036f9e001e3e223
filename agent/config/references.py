"""Third validation pass: keys that name a device's metrics, checked against what its driver delivers.

A metric list belongs to the driver, so each enabled or disabled device's driver is built here
(building never opens a port or touches a device: buses open on first use) and asked for its
metrics. The same checks are not repeated at start-up: processing and the site controller trust
this pass.
"""

from __future__ import annotations

from ..bus import BusPool
from ..contract import DriverContext
from ..driver import DriverCatalog
from ..processing.config import metric_problems
from ..site.config import site_reference_problems
from .schema import AgentConfig


def reference_problems(config: AgentConfig, catalog: DriverCatalog) -> list[tuple[tuple, str]]:
    ctx = DriverContext(gateway=config.gateway.id, state_dir=config.gateway.state_dir,
                        buses=BusPool(config.lines))
    problems: list[tuple[tuple, str]] = []
    metrics: dict[str, list[str]] = {}
    writable: dict[str, bool] = {}
    for i, dev in enumerate(config.devices):
        spec = catalog.get(dev.type)
        if spec is None:  # reported by the first pass
            continue
        writable[dev.name] = spec.writable
        try:
            specs = list(spec.factory(dev, ctx).metrics())
        except Exception as e:  # noqa: BLE001 - a driver rejecting its config is a config problem
            problems.append((("devices", i), f"driver {dev.type!r} cannot be set up: {e}"))
            continue
        problems += [(("devices", i, *sub), msg) for sub, msg in metric_problems(dev, specs)]
        if dev.enabled:
            metrics[dev.name] = [m.name for m in specs]
    problems += site_reference_problems(config.site, metrics, writable)
    return problems
