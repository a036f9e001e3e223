"""Configuration of site load management and time-of-use charging caps (``[site]``)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, model_validator

from ..contract import DeviceConfig, Frozen, Name
from ..contract.charger import ChargerKeys, ChargerMetric, ChargerPoint
from .solar import SolarConfig


class Period(enum.StrEnum):
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


class GridMeterRef(Frozen):
    device: Name = Field(description="Device that meters the site's grid connection.")
    metric: str = Field("power", description="Its total active power metric (import positive).")
    scale: float = Field(1.0, gt=0, description="Multiply the metric by this to get W (1000 if it reports kW).")


class TouConfig(Frozen):
    """Charging caps by tariff period. The periods come from the one tariff, ``[processing.tariff]``."""

    enabled: bool = True
    peak_max_kw: float = Field(0.0, ge=0, description="Cap on total charging power in peak hours (0 = only boosted "
                               "sessions charge); also applies to any period other than flat and valley (e.g. critical).")
    flat_max_kw: float | None = Field(None, ge=0, description="Cap in flat hours; none = the site limit only.")
    valley_max_kw: float | None = Field(None, ge=0, description="Cap in valley hours; none = the site limit only.")

    @model_validator(mode="before")
    @classmethod
    def _one_tariff(cls, data: object) -> object:
        if isinstance(data, dict):
            moved = [k for k in ("windows", "prices", "utc_offset_hours") if k in data]
            if moved:
                raise ValueError(
                    f"{', '.join(moved)} cannot be set here: the agent has one tariff, configured in "
                    "[processing.tariff] (periods and prices) with processing.timezone, and charging follows it; "
                    "[site.tou] only sets the charging caps per period")
        return data

    def cap_w(self, period: str) -> float | None:
        """Most charging power in ``period`` (W), None for no cap beyond the site limit."""
        kw = {Period.FLAT.value: self.flat_max_kw, Period.VALLEY.value: self.valley_max_kw}.get(period, self.peak_max_kw)
        return None if kw is None else kw * 1000


HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class SessionDefaults(Frozen):
    """When a car on this charger (or any charger) is expected to leave and how much energy it wants."""

    departure: str | None = Field(None, pattern=HHMM, description="Local time HH:MM the car leaves (the next one after plug-in).")
    dwell_hours: float | None = Field(None, gt=0, le=72, description="Or: hours after plug-in the car leaves.")
    energy_kwh: float | None = Field(None, gt=0, le=1000, description="Energy the car wants in this session.")


class PlannerConfig(Frozen):
    """Departure-aware planning: each session gets its energy before it leaves, at the lowest cost."""

    enabled: bool = Field(False, description="Plan by departure (replaces the time-of-use caps).")
    slot_minutes: int = Field(15, ge=1, le=60, description="Plan resolution; slots start at multiples of this.")
    horizon_hours: float = Field(24.0, gt=0, le=72, description="Plan no further ahead than this.")
    headroom: float = Field(0.9, gt=0, le=1, description="Share of today's free capacity future slots may plan on "
                            "(the rest absorbs base load that grows later).")
    finish_early_minutes: float = Field(10.0, ge=0, le=240, description="Plan to be done this long before departure.")
    default: SessionDefaults = Field(SessionDefaults(dwell_hours=8.0, energy_kwh=30.0),
                                     description="Fleet default for sessions without better information.")
    chargers: dict[Name, SessionDefaults] = Field({}, description="Per-charger defaults (over the fleet default).")


class SiteConfig(Frozen):
    grid_meter: GridMeterRef
    chargers: tuple[Name, ...] = Field(min_length=1, description="Charger devices this site manages.")
    limit_kw: float | None = Field(None, gt=0, description="Site import limit in kW.")
    limit_a: float | None = Field(None, gt=0, description="Site limit in A per phase (converted with voltage x phases).")
    voltage: float = Field(230.0, gt=0, le=400)
    phases: int = Field(3, ge=1, le=3)
    margin_kw: float = Field(0.5, ge=0, description="Headroom kept below the limit.")
    min_current: float = Field(6.0, ge=0, le=32, description="Below this a charger is paused (IEC 61851: 6 A).")
    max_current: float = Field(32.0, gt=0, le=500, description="Most current per charger (DC: the current that "
                               "gives its power at voltage x phases).")
    safe_current: float = Field(6.0, ge=0, le=500, description="Per-charger current while grid meter data is stale (0 = pause).")
    stale_after: float = Field(15.0, gt=0, description="Seconds after which grid meter data counts as stale.")
    ramp_up: float | None = Field(4.0, gt=0, description="Largest increase per step in A; decreases are immediate.")
    meter_lag: float = Field(1.0, ge=0, le=10, description="Seconds the grid meter's value trails its timestamp (its "
                             "averaging and update period): the chargers' power at that moment is subtracted from it.")
    car_ramp: float = Field(5.0, ge=0, le=60, description="Seconds a car may take to follow a new limit (IEC 61851: 5 s): "
                            "an increase is held in reserve until a grid reading this much (plus meter_lag) later shows it.")
    tou: TouConfig = TouConfig()
    planner: PlannerConfig = PlannerConfig()
    solar: SolarConfig | None = Field(None, description="PV and a battery behind the grid meter: charging modes, "
                                      "peak shaving, surplus charging, export limit.")
    charger_phase: dict[Name, Annotated[int, Field(ge=1, le=3)]] = Field({}, description="Site phase (1-3) a single-phase charger is wired to; default 1.")
    phase_currents: tuple[str, str, str] | None = Field(
        None, description="Grid meter metrics with the current per phase (A), for a per-phase limit (limit_a).")

    @model_validator(mode="after")
    def _limit(self) -> SiteConfig:
        if (self.limit_kw is None) == (self.limit_a is None):
            raise ValueError("give exactly one of limit_kw or limit_a")
        if self.grid_meter.device in self.chargers:
            raise ValueError("the grid meter cannot be one of the chargers")
        if len(set(self.chargers)) != len(self.chargers):
            raise ValueError("a charger is listed twice")
        unknown = [n for n in (self.solar.modes if self.solar else {}) if n not in self.chargers]
        if unknown:
            raise ValueError(f"solar.modes names {', '.join(map(repr, unknown))}, not among the site's chargers")
        return self

    @property
    def limit_w(self) -> float:
        if self.limit_kw is not None:
            return self.limit_kw * 1000.0
        assert self.limit_a is not None
        return self.limit_a * self.voltage * self.phases


CHARGER_METRICS_USED = (ChargerMetric.STATE, ChargerMetric.POWER, ChargerMetric.CURRENT_L1)  # what the site reads


def site_reference_problems(site: SiteConfig | None, metrics: dict, writable: dict) -> list[tuple[tuple, str]]:
    """Checks that need the devices' drivers: the grid meter delivers the named metric, and every
    charger is an enabled, writable device with the charger metrics. ``metrics`` maps each enabled
    device to its metric names, ``writable`` each device name to whether its driver accepts writes."""
    if site is None:
        return []
    problems: list[tuple[tuple, str]] = []
    meter = site.grid_meter
    if meter.device in writable and meter.device not in metrics:
        problems.append((("site", "grid_meter", "device"), f"device {meter.device!r} is disabled (enabled = false)"))
    elif meter.device in metrics and meter.metric not in metrics[meter.device]:
        problems.append((("site", "grid_meter", "metric"),
                         _no_such_metric(meter.metric, metrics[meter.device], meter.device)))
    for i, n in enumerate(site.chargers):
        if n not in writable:
            continue  # no such device: reported by cross_check_site
        if n not in metrics:
            problems.append((("site", "chargers", i), f"device {n!r} is disabled (enabled = false)"))
            continue
        missing = [m for m in CHARGER_METRICS_USED if m not in metrics[n]]
        if not writable[n] or missing:
            problems.append((("site", "chargers", i), f"device {n!r} is not a charger (its driver "
                             + ("accepts no writes" if not writable[n] else f"lacks metrics {', '.join(missing)}") + ")"))
    return problems


def _solar_problems(site: SiteConfig, devices: dict[str, DeviceConfig]) -> list[tuple[tuple, str]]:
    """The inverter and battery are configured devices; the points the site writes are declared writable."""
    s = site.solar
    if s is None:
        return []
    problems: list[tuple[tuple, str]] = []
    wants = [("inverter", s.inverter, s.export_point if s.export_limit_kw is not None else None),
             ("battery", s.battery, s.battery_point)]
    for key, name, point in wants:
        if name is None:
            continue
        dev = devices.get(name)
        if dev is None:
            problems.append((("site", "solar", key), f"no device named {name!r}"))
            continue
        if point is None:
            continue
        points = {p.name: p for p in dev.points()} if hasattr(dev, "points") else {}
        if point not in points or not points[point].writable:
            problems.append((("site", "solar", key), f"device {name!r} does not declare {point} writable: the site "
                             f"controller writes it, so add writable = [\"{point}\"] to it"))
    return problems


def cross_check_site(site: SiteConfig, configured: Sequence[DeviceConfig]) -> list[tuple[tuple, str]]:
    """Whole-file checks: the grid meter and every charger are configured devices; the chargers
    declare their current limit writable (the site controller writes it through the write gate)."""
    devices = {d.name: d for d in configured}
    problems = []
    if site.grid_meter.device not in devices:
        problems.append((("site", "grid_meter", "device"), f"no device named {site.grid_meter.device!r}"))
    for i, n in enumerate(site.chargers):
        dev = devices.get(n)
        if dev is None:
            problems.append((("site", "chargers", i), f"no device named {n!r}"))
        elif isinstance(dev, ChargerKeys) and ChargerPoint.CURRENT_LIMIT not in dev.writable:
            problems.append((("site", "chargers", i), f"device {n!r} does not declare current_limit writable: the "
                             "site controller sets its current limit, so add writable = [\"current_limit\"] to it"))
    return problems + _solar_problems(site, devices)


def _no_such_metric(metric: str, names: Sequence[str], device: str | None = None) -> str:
    from ..hints import no_such_metric  # the hints: only for a config that has a problem

    return no_such_metric(metric, names, device)
