"""The charger model every charger driver shares, whatever the protocol underneath.

The capability itself (state, metric names, writable points, the typed writes and the config keys) is
the public contract in :mod:`agent.contract.charger`; this module adds what drivers share to implement
it: the metric specs, one poll's status, the config class (in :mod:`.config`), and ``write(point, value)`` over the typed
writes for generic callers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from agent.contract import MetricKind, MetricSpec, Sample
from agent.contract.charger import ChargerControl, ChargerMetric, ChargerPoint, IecState
from agent.contract.lazy import lazy_exports

if TYPE_CHECKING:
    from .config import ChargerConfig

__all__ = ["CHARGER_METRICS", "ChargerConfig", "ChargerControl", "ChargerDriver", "ChargerMetric", "ChargerPoint",
           "ChargerStatus", "IecState"]

# the config class (pydantic) is in .config, imported on first use: the run time reads its plain twin
__getattr__ = lazy_exports(__name__, {"ChargerConfig": "drivers.charger_common.config"})


# A charger's gauges follow its sessions (IEC 61851 state) and the site controller's current limit: a
# session starting is ordinary operation, so none is watched by the anomaly detector unless a device
# lists it (`anomaly = ["power"]`); its errors are in `error` and `state`.
_FOLLOWS = {"anomaly": False}
CHARGER_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("state", "", MetricKind.STATE, "IEC 61851 state: 0 ?, 1 A, 2 B, 3 C, 4 D, 5 E, 6 F"),
    MetricSpec("connected", "", MetricKind.STATE, "1 when a vehicle is plugged in"),
    MetricSpec("charging", "", MetricKind.STATE, "1 while current flows (state C or D)"),
    MetricSpec("enabled", "", MetricKind.STATE, "1 when the charger is allowed to charge"),
    MetricSpec("current_limit", "A", MetricKind.GAUGE, "current offered to the vehicle, per phase", **_FOLLOWS),
    MetricSpec("current_l1", "A", **_FOLLOWS),
    MetricSpec("current_l2", "A", **_FOLLOWS),
    MetricSpec("current_l3", "A", **_FOLLOWS),
    MetricSpec("power", "W", MetricKind.GAUGE, "active charging power, all phases", **_FOLLOWS),
    MetricSpec("power_l1", "W", **_FOLLOWS),
    MetricSpec("power_l2", "W", **_FOLLOWS),
    MetricSpec("power_l3", "W", **_FOLLOWS),
    MetricSpec("session_energy", "kWh", MetricKind.COUNTER, "energy delivered in the current session", restarts=True),
    MetricSpec("energy_total", "kWh", MetricKind.COUNTER, "lifetime energy delivered"),
    MetricSpec("error", "", MetricKind.STATE, "device error code, 0 = none"),
)
assert [m.name for m in CHARGER_METRICS] == [m.value for m in ChargerMetric]


@dataclass(slots=True)
class ChargerStatus:
    """One poll's worth of charger facts. ``None`` means "this charger does not report it"."""

    state: IecState = IecState.UNKNOWN
    enabled: bool | None = None
    current_limit: float | None = None
    current_l1: float | None = None
    current_l2: float | None = None
    current_l3: float | None = None
    power: float | None = None
    power_l1: float | None = None
    power_l2: float | None = None
    power_l3: float | None = None
    session_energy: float | None = None
    energy_total: float | None = None
    error: int | None = None

    def samples(self) -> list[Sample]:
        out = [
            Sample("state", float(int(self.state))),
            Sample("connected", 1.0 if self.state.connected else 0.0),
            Sample("charging", 1.0 if self.state.charging else 0.0),
        ]
        for name, v in asdict(self).items():
            if name != "state" and v is not None:
                out.append(Sample(name, float(v)))
        return out


class ChargerDriver:
    """Base of charger drivers: they implement :class:`ChargerControl`; ``write(point, value)`` maps a
    point name onto those typed writes for generic callers (tools, tests)."""

    async def set_current_limit(self, amps: float) -> float:
        raise NotImplementedError

    async def start(self) -> bool:
        raise NotImplementedError

    async def stop(self) -> bool:
        raise NotImplementedError

    async def write(self, point: str, value: Any) -> Any:
        if point == ChargerPoint.CURRENT_LIMIT:
            amps = float(value)
            if not math.isfinite(amps) or amps < 0:
                raise ValueError(f"current limit must be >= 0 A, got {value!r}")
            return await self.set_current_limit(amps)
        if point == ChargerPoint.START:
            return await self.start()
        if point == ChargerPoint.STOP:
            return await self.stop()
        raise ValueError(f"{point!r} is not a charger point (current_limit, start, stop)")
