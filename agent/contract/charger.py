"""The charger capability: what every charger driver offers, whatever the protocol underneath.

A Modbus wallbox and an OCPP charge point publish the same metrics (:class:`ChargerMetric`), accept
the same writes (:class:`ChargerControl`) and are configured with the same keys (:class:`ChargerKeys`),
so the site controller, the command router and upstream subscribers never care which one they talk to.

IEC 61851-1 control-pilot state is published as a number (metric ``state``, :class:`IecState`):
0 unknown, 1 A (no vehicle), 2 B (connected, not charging), 3 C (charging), 4 D (charging with
ventilation), 5 E (no power), 6 F (EVSE fault).
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from .lazy import lazy_exports
from .points import Point, PointKind

MAX_BOOST_MINUTES = 24 * 60
# the config keys' model (pydantic) is in agent.contract.charger_config, imported on first use
__getattr__ = lazy_exports(__name__, {"ChargerKeys": "agent.contract.charger_config"})


class IecState(enum.IntEnum):
    UNKNOWN = 0
    A = 1
    B = 2
    C = 3
    D = 4
    E = 5
    F = 6

    @classmethod
    def parse(cls, text: str) -> IecState:
        """'A', 'B1', 'C2', 'd' ... -> state. C1 and D1 (no PWM offered) count as B, as evcc does."""
        t = text.strip().upper()
        if not t or t[0] not in "ABCDEF":
            return cls.UNKNOWN
        if t in ("C1", "D1"):
            return cls.B
        return cls[t[0]]

    @classmethod
    def of(cls, value: float) -> IecState:
        """The state a published ``state`` value stands for (UNKNOWN for anything else, NaN included)."""
        return cls(int(value)) if value == value and float(value).is_integer() and 0 <= value <= 6 else cls.UNKNOWN

    @property
    def connected(self) -> bool:
        return self in (IecState.B, IecState.C, IecState.D)

    @property
    def charging(self) -> bool:
        return self in (IecState.C, IecState.D)

    @property
    def fault(self) -> bool:
        return self in (IecState.E, IecState.F)


class ChargerMetric(enum.StrEnum):
    """Metric names every charger publishes (when the charger reports the fact)."""

    STATE = "state"
    CONNECTED = "connected"
    CHARGING = "charging"
    ENABLED = "enabled"
    CURRENT_LIMIT = "current_limit"
    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    POWER = "power"
    POWER_L1 = "power_l1"
    POWER_L2 = "power_l2"
    POWER_L3 = "power_l3"
    SESSION_ENERGY = "session_energy"
    ENERGY_TOTAL = "energy_total"
    ERROR = "error"


class ChargerPoint(enum.StrEnum):
    """Points a charger may declare writable in config (``writable = [...]``)."""

    CURRENT_LIMIT = "current_limit"  # amps offered per phase; 0 pauses
    START = "start"
    STOP = "stop"
    BOOST = "boost"  # not a device write: the site controller charges the car at full current for a while


@runtime_checkable
class ChargerControl(Protocol):
    """The writes a charger driver accepts. Each raises a typed device error when the charger refuses."""

    async def set_current_limit(self, amps: float) -> float:
        """Offer ``amps`` per phase (0 pauses); returns the amps now offered."""
        ...

    async def start(self) -> bool:
        """Allow charging; returns whether charging is now allowed."""
        ...

    async def stop(self) -> bool:
        """Stop charging; returns whether a running session was stopped."""
        ...


class ChargerKeysBase:
    """Mixin of :class:`~agent.contract.charger_config.ChargerKeys` (and its plain twin): the points."""

    def points(self) -> tuple[Point, ...]:
        """The charger's points (agent.contract.DeclaresPoints); writable as ``writable`` says."""
        lo, hi = self.current_limit_bounds
        w = set(self.writable)
        return (
            Point(ChargerPoint.CURRENT_LIMIT.value, unit="A", low=lo, high=hi, below_low=0.0,
                  writable=ChargerPoint.CURRENT_LIMIT in w, meaning="amps offered per phase; 0 pauses"),
            Point(ChargerPoint.START.value, PointKind.ACTION, writable=ChargerPoint.START in w,
                  meaning="allow charging"),
            Point(ChargerPoint.STOP.value, PointKind.ACTION, writable=ChargerPoint.STOP in w,
                  meaning="stop charging"),
            Point(ChargerPoint.BOOST.value, unit="min", low=0, high=MAX_BOOST_MINUTES, writable=ChargerPoint.BOOST in w,
                  meaning="the site controller charges at full current for this long; 0 cancels"),
        )

    def aliases(self) -> dict[str, str]:
        return {"start": "start", "stop": "stop", "set_current_limit": "current_limit", "boost": "boost"}
