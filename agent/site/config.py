"""Configuration of site load management, time-of-use charging caps and PV (``[site]``): the models
(pydantic); what the controller asks of them is in :mod:`agent.site.bases`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, model_validator

from ..contract import DeviceConfig, Frozen, Name
from ..contract.charger import ChargerKeys, ChargerMetric, ChargerPoint
from ..hints import no_such_metric
from .bases import Mode, Period, SiteBase, TouBase

__all__ = ["GridMeterRef", "Mode", "Period", "PlannerConfig", "SessionDefaults", "SiteConfig", "SolarConfig",
           "TouConfig", "cross_check_site", "site_reference_problems"]


class SolarConfig(Frozen):
    """PV and a battery behind the grid meter (``[site.solar]``)."""

    inverter: Name | None = Field(None, description="Device reporting PV power (e.g. a sunspec device).")
    pv_metric: str = Field("pv_power", description="Its PV AC power metric (W).")
    pv_peak_kw: float = Field(0.0, ge=0, description="Array peak power (kW): the export cap's 100 %, and PV assumed when unknown.")
    battery: Name | None = Field(None, description="Device with the battery (declares battery_power writable).")
    battery_point: str = Field("battery_power", description="Its power set-point point (W, positive discharges).")
    battery_metric: str = Field("battery_power", description="Its battery power metric (W, positive discharging).")
    soc_metric: str = Field("battery_soc", description="Its state-of-charge metric (%).")
    battery_max_kw: float = Field(0.0, ge=0, description="Most the controller asks of the battery either way (kW).")
    soc_min: float = Field(15.0, ge=0, le=100, description="Never discharge below this state of charge (%).")
    soc_max: float = Field(95.0, ge=0, le=100, description="Never charge above this state of charge (%).")
    peak_shave_kw: float | None = Field(None, gt=0, description="Discharge the battery when the grid import would exceed this (kW).")
    surplus_charge: bool = Field(True, description="Charge the battery from PV that would otherwise be exported.")
    export_limit_kw: float | None = Field(None, ge=0, description="Most export the grid connection allows (kW; 0 = zero export).")
    export_point: str = Field("power_limit", description="The inverter's output cap point (% of pv_peak_kw).")
    export_margin_kw: float = Field(1.0, ge=0, description="Kept between the export and its limit.")
    deadband_kw: float = Field(0.5, ge=0, description="Battery set-point changes smaller than this are not written.")
    settle: float = Field(2.0, ge=0, le=30, description="Seconds the battery and inverter take to follow a write: "
                          "the next change (other than less charging or a lower cap) waits for a grid reading "
                          "taken this long (plus the site's meter_lag) after it.")
    stale_after: float = Field(15.0, gt=0, description="Seconds after which inverter or battery readings count as stale.")
    valley_charge: bool = Field(False, description="Charge the battery from the grid in the tariff's valley hours, "
                                "up to valley_soc by the valley's end (within the site limit and the battery's limits).")
    valley_soc: float = Field(80.0, ge=0, le=100, description="State of charge (%) valley charging aims for (at most soc_max).")
    battery_kwh: float | None = Field(None, gt=0, description="Battery capacity (kWh): the valley charging rate is "
                                      "spread over what is left of the valley, and near soc_min / soc_max the "
                                      "battery is slowed so that a minute at its set-point cannot cross them.")
    pv_start_kw: float = Field(0.0, ge=0, description="PV mode: a charger starts when the surplus exceeds its minimum "
                               "power by this much.")
    pv_stop_kw: float = Field(1.5, ge=0, description="PV mode: a charging car keeps its minimum current until the "
                              "surplus falls this far below its minimum power (the grid makes up the difference).")
    pv_min_on: float = Field(180.0, ge=0, le=3600, description="PV mode: seconds a charger, once started, charges at "
                             "least (within the site limit), whatever the clouds do.")
    pv_min_off: float = Field(120.0, ge=0, le=3600, description="PV mode: seconds a charger, once stopped, waits before "
                              "it may start again.")
    latitude: float | None = Field(None, ge=-90, le=90, description="Site latitude (degrees north): with the planner, "
                                   "min+PV sessions are planned around a PV forecast (clear sky scaled by measured PV).")
    longitude: float | None = Field(None, ge=-180, le=180, description="Site longitude (degrees east), for solar time.")
    forecast_tau_h: float = Field(1.0, gt=0, le=24, description="Hours over which measured PV scales the clear-sky forecast.")
    forecast_trust: float = Field(0.8, gt=0, le=1, description="Share of the forecast PV energy the plan counts on.")
    default_mode: Mode = Field(Mode.NOW, description="Charging mode of chargers not listed in modes.")
    modes: dict[Name, Mode] = Field({}, description='Charging mode per charger: "off", "now", "minpv", "pv".')

    @model_validator(mode="after")
    def _consistent(self) -> SolarConfig:
        if self.battery is not None and self.battery_max_kw <= 0:
            raise ValueError("battery needs battery_max_kw (the most the controller asks of it)")
        if self.soc_min >= self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min:g}) must be below soc_max ({self.soc_max:g})")
        if self.valley_charge and (self.battery is None or self.battery_kwh is None):
            raise ValueError("valley_charge needs battery and battery_kwh (its capacity, to spread the charge)")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude (the PV forecast needs the site's position)")
        if self.latitude is not None and (self.inverter is None or self.pv_peak_kw <= 0):
            raise ValueError("a PV forecast (latitude, longitude) needs inverter and pv_peak_kw")
        if self.export_limit_kw is not None and (self.inverter is None or self.pv_peak_kw <= 0):
            raise ValueError("export_limit_kw needs inverter and pv_peak_kw (the cap is a share of the array)")
        return self


class GridMeterRef(Frozen):
    device: Name = Field(description="Device that meters the site's grid connection.")
    metric: str = Field("power", description="Its total active power metric (import positive).")
    scale: float = Field(1.0, gt=0, description="Multiply the metric by this to get W (1000 if it reports kW).")


class TouConfig(TouBase, Frozen):
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


class SiteConfig(SiteBase, Frozen):
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
                         no_such_metric(meter.metric, metrics[meter.device], meter.device)))
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
