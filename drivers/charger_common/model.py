"""The charger model every charger driver shares, whatever the protocol underneath.

Metrics and commands are the same for a Modbus wallbox and an OCPP charge point, so the site
controller, the command layer and upstream subscribers never care which one they talk to.

IEC 61851-1 control-pilot state is published as a number (metric ``state``):

=====  ======  ==========================================
value  state   meaning
=====  ======  ==========================================
0      ?       unknown / not reported
1      A       no vehicle
2      B       vehicle connected, not charging (B1/B2, C1/D1)
3      C       charging
4      D       charging with ventilation
5      E       no power / control-pilot short
6      F       EVSE fault
=====  ======  ==========================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from pydantic import Field, field_validator, model_validator

from agent.contract import DeviceConfig, MetricKind, MetricSpec, Sample


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

    @property
    def connected(self) -> bool:
        return self in (IecState.B, IecState.C, IecState.D)

    @property
    def charging(self) -> bool:
        return self in (IecState.C, IecState.D)

    @property
    def fault(self) -> bool:
        return self in (IecState.E, IecState.F)


class ChargerPoint(enum.StrEnum):
    """Points a charger may declare writable in config (``writable = [...]``)."""

    CURRENT_LIMIT = "current_limit"
    START = "start"
    STOP = "stop"
    BOOST = "boost"


CHARGER_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("state", "", MetricKind.STATE, "IEC 61851 state: 0 ?, 1 A, 2 B, 3 C, 4 D, 5 E, 6 F"),
    MetricSpec("connected", "", MetricKind.STATE, "1 when a vehicle is plugged in"),
    MetricSpec("charging", "", MetricKind.STATE, "1 while current flows (state C or D)"),
    MetricSpec("enabled", "", MetricKind.STATE, "1 when the charger is allowed to charge"),
    MetricSpec("current_limit", "A", MetricKind.GAUGE, "current offered to the vehicle, per phase"),
    MetricSpec("current_l1", "A"),
    MetricSpec("current_l2", "A"),
    MetricSpec("current_l3", "A"),
    MetricSpec("power", "W", MetricKind.GAUGE, "active charging power, all phases"),
    MetricSpec("power_l1", "W"),
    MetricSpec("power_l2", "W"),
    MetricSpec("power_l3", "W"),
    MetricSpec("session_energy", "kWh", MetricKind.COUNTER, "energy delivered in the current session", restarts=True),
    MetricSpec("energy_total", "kWh", MetricKind.COUNTER, "lifetime energy delivered"),
    MetricSpec("error", "", MetricKind.STATE, "device error code, 0 = none"),
)


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
        for f in fields(self):
            if f.name == "state":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out.append(Sample(f.name, float(v)))
        return out


class ChargerConfig(DeviceConfig):
    """Keys every charger device has, on top of the common device keys."""

    phases: int = Field(3, description="Phases wired to the vehicle (1 or 3).")
    voltage: float = Field(230.0, gt=0, le=400, description="Nominal phase voltage, for power/current conversions.")
    writable: tuple[ChargerPoint, ...] = Field(
        (), description="Points commands may change: current_limit, start, stop, boost. Nothing by default."
    )
    current_limit_bounds: tuple[float, float] = Field(
        (6.0, 32.0), description="[min, max] amps a command may set (IEC 61851 minimum is 6 A)."
    )

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: int) -> int:
        if v not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> ChargerConfig:
        lo, hi = self.current_limit_bounds
        if not (0 <= lo <= hi <= 80):
            raise ValueError("current_limit_bounds must be [min, max] with 0 <= min <= max <= 80")
        return self
