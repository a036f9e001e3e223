"""Processing configuration: windows, quality checks, energy, tariff, carbon, anomaly detection.

``ProcessingConfig`` is the ``[processing]`` section. The per-device keys (``publish``, ``checks``,
``energy``) are defined with the device config in :mod:`agent.contract.options`.
``metric_problems`` checks those keys against a device's metrics (part of the shared validation).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from ..contract.config import DeviceConfig, Frozen
from ..contract.options import CheckConfig as CheckConfig  # per-device keys, defined by the device contract
from ..contract.options import EnergyConfig, EnergyMethod
from ..contract.options import PublishMode as PublishMode
from ..model import MetricKind, MetricSpec
from .carbon import DEFAULT_FACTOR, DEFAULT_REGION


class WindowSize(enum.StrEnum):
    S10 = "10s"
    M1 = "1m"
    M15 = "15m"
    H1 = "1h"

    @property
    def ms(self) -> int:
        return {"10s": 10_000, "1m": 60_000, "15m": 900_000, "1h": 3_600_000}[self.value]


HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class TariffSegment(Frozen):
    start: str = Field(description="Local time HH:MM (inclusive).")
    end: str = Field(description="Local time HH:MM (exclusive); 24:00 for midnight; may wrap past midnight.")
    period: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not HHMM.match(v):
            raise ValueError(f"{v!r} is not a HH:MM time")
        return v


def _seg(a: str, b: str, p: str) -> TariffSegment:
    return TariffSegment(start=a, end=b, period=p)


DEFAULT_SCHEDULE = (
    _seg("22:00", "06:00", "valley"),
    _seg("06:00", "08:00", "flat"),
    _seg("08:00", "11:00", "peak"),
    _seg("11:00", "18:00", "flat"),
    _seg("18:00", "21:00", "peak"),
    _seg("21:00", "22:00", "flat"),
)


class TariffSeason(Frozen):
    """Daily schedules that apply in some months (e.g. summer with a critical peak)."""

    name: str = Field(description="A label, e.g. summer.")
    months: tuple[int, ...] = Field(min_length=1, description="Months (1-12) this season covers.")
    weekday: tuple[TariffSegment, ...]
    holiday: tuple[TariffSegment, ...] | None = Field(None, description="Schedule on holidays; default: this season's weekday.")
    prices: dict[str, float] | None = Field(
        None, description="Price per kWh by period in this season's months (ratios that change by season); default: the tariff's prices.")

    @field_validator("months")
    @classmethod
    def _months(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [m for m in v if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1-12, got {bad}")
        return v


class TariffConfig(Frozen):
    """Time-of-use tariff: period prices and the daily schedules in local time.

    ``seasons`` override the schedules in the months they list (periods may differ by month, e.g. a
    critical peak only in July and August), and their prices too when they give ``prices``; months in
    no season use ``weekday``/``holiday`` and ``prices``.
    """

    currency: str = "CNY"
    prices: dict[str, float] = Field(
        default_factory=lambda: {"peak": 1.512, "flat": 1.162, "valley": 0.87},
        description="Price per kWh by period name.",
    )
    weekday: tuple[TariffSegment, ...] = DEFAULT_SCHEDULE
    holiday: tuple[TariffSegment, ...] | None = Field(None, description="Schedule on holidays; default: weekday.")
    weekend_is_holiday: bool = False
    holidays: tuple[dt.date, ...] = ()
    seasons: tuple[TariffSeason, ...] = Field((), description="Schedules by month; other months use weekday/holiday.")

    @model_validator(mode="after")
    def _periods_priced(self) -> TariffConfig:
        scheds = [("weekday", self.weekday, self.prices, "prices"), ("holiday", self.holiday or (), self.prices, "prices")]
        for k, season in enumerate(self.seasons):
            prices, where = (season.prices, f"seasons[{k}].prices") if season.prices is not None else (self.prices, "prices")
            scheds += [(f"seasons[{k}].weekday", season.weekday, prices, where),
                       (f"seasons[{k}].holiday", season.holiday or (), prices, where)]
        for name, sched, prices, where in scheds:
            for i, s in enumerate(sched):
                if s.period not in prices:
                    raise ValueError(f"{name}[{i}]: period {s.period!r} has no price ({where}: {sorted(prices)})")
        seen: dict[int, str] = {}
        for season in self.seasons:
            for m in season.months:
                if m in seen:
                    raise ValueError(f"month {m} is in both season {seen[m]!r} and {season.name!r}")
                seen[m] = season.name
        if not self.prices:
            raise ValueError("prices: at least one period is needed")
        return self


class AnomalyConfig(Frozen):
    enabled: bool = True
    threshold: float = Field(0.5, gt=0, lt=1, description="Score at which an anomaly starts (0.5: tail probability 1e-5); the record rule may start one below it.")
    release: float = Field(0.3, gt=0, lt=1, description="Score below which an active anomaly may end.")
    quiet_samples: int = Field(10, ge=1, description="Samples below `release` that end an anomaly.")
    alpha: float = Field(0.003, gt=0, lt=1, description="Baseline adaptation rate per sample.")
    history_samples: int = Field(8640, ge=10, description="Samples over which the surprise distribution is learnt.")
    range_margin: float = Field(0.01, description="A value this fraction of the seen range beyond it scores 1 (< 0: off).")
    warmup_samples: int = Field(150, ge=2, description="Samples seen before a series can score.")
    energy_checks: bool = Field(True, description=(
        "Building energy checks on each meter's hourly kWh: out-of-hours base load and shifted schedules."))


class CarbonConfig(Frozen):
    """Grid emission factor by region and year from the built-in table, a custom value, or hourly values."""

    region: str = Field(DEFAULT_REGION, description=(
        "Table region and year: national (2021-2023), east-china, south-west (2022, 2023), north-china, north-east, central-china, "
        "north-west, south (2023), national-ets (2022)."))
    year: int | None = Field(None, ge=2000, le=2100, description="Table year; default: the region's newest in the table.")
    value: float | None = Field(None, ge=0, lt=5, description="Custom kgCO2e/kWh (over the table).")
    hourly_file: Path | None = Field(None, description="CSV of hour,factor (0-23) or local YYYY-MM-DDTHH:MM,factor lines.")

    @model_validator(mode="after")
    def _known(self) -> CarbonConfig:
        from .carbon import read_hourly, table_factor

        if self.value is None:
            table_factor(self.region, self.year)
        if self.hourly_file is not None:
            if not self.hourly_file.is_file():
                raise ValueError(f"hourly_file {str(self.hourly_file)!r} does not exist")
            read_hourly(self.hourly_file, zoneinfo.ZoneInfo("UTC"))
        return self


class JitMode(enum.StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class ProcessingConfig(Frozen):
    jit: JitMode = Field(JitMode.AUTO, description=(
        "Compiled kernels. 'auto': the ahead-of-time build `edge-agent warmup` makes, when there is one; "
        "else the Python kernels until they cost more than 1 % of a core, then compiled ones (an "
        "ahead-of-time build made then, or numba's JIT, which keeps about 50 MB of numba in memory). "
        "'on': numba's JIT from the start, even when an ahead-of-time build is present (a gateway without a C "
        "compiler, or a comparison): about 50 MB more anonymous memory, and LLVM's code where other processes "
        "map it too (docs/processing.md). 'off': never compiled. Results are identical either way."))
    windows: tuple[WindowSize, ...] = Field((WindowSize.M1,), description="Aggregation windows (UTC-aligned).")
    close_grace: float = Field(2.0, ge=0, le=600, description="Seconds after a window's end before it closes.")
    gap_factor: float = Field(2.5, gt=1, description="An interval longer than this x poll_interval is a gap.")
    reject_quality: int = Field(1 | 256 | 512, ge=0, description="Quality bits that keep a reading out of aggregates (out_of_range, device_flagged, implausible).")
    timezone: str = Field("Asia/Shanghai", description="Local time zone for tariff periods and days.")
    tariff: TariffConfig = TariffConfig()
    emission_factor: float = Field(DEFAULT_FACTOR, ge=0, description=(
        "Grid emission factor, kgCO2e per kWh. Default: China's national grid average for 2023 (MEE and NBS, "
        "《关于发布2023年电力二氧化碳排放因子的公告》), the same as an empty [processing.carbon]."))
    carbon: CarbonConfig | None = Field(None, description="Emission factor by region/year or hourly; over emission_factor.")
    anomaly: AnomalyConfig = AnomalyConfig()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: tuple[WindowSize, ...]) -> tuple[WindowSize, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a window size is listed twice")
        return v


ENERGY_UNITS = {"wh": 1e-3, "kwh": 1.0, "mwh": 1e3}  # register unit -> kWh
POWER_UNITS = {"w": 1e-3, "kw": 1.0, "mw": 1e3}  # power unit -> kW (integration gives unit x h)


def _energy_choice(dev: DeviceConfig, metrics: Sequence[MetricSpec]) -> tuple[int, EnergyConfig] | str | None:
    cfg = dev.energy
    names = [m.name for m in metrics]
    if cfg is not None:
        if cfg.metric not in names:
            return _no_such_metric(cfg.metric, names)
        return names.index(cfg.metric), cfg
    counters = [i for i, m in enumerate(metrics)
                if m.kind == MetricKind.COUNTER and m.unit.lower() in ENERGY_UNITS and not m.medium]
    if len(counters) == 1:
        return counters[0], EnergyConfig(metric=names[counters[0]])
    return None


def resolve_energy(dev: DeviceConfig, metrics: Sequence[MetricSpec]) -> tuple[int, EnergyConfig, EnergyMethod, float] | str | None:
    """The energy source of a device: (local metric index, config, method, factor to kWh or kW),
    None when it has none, or a message saying why the configured one cannot work."""
    choice = _energy_choice(dev, metrics)
    if choice is None or isinstance(choice, str):
        return choice
    i, cfg = choice
    m = metrics[i]
    if m.medium:  # heat, water, gas: the ledger prices electricity and weighs it with the grid's factor
        return (f"metric {m.name!r} meters {m.medium}, not electricity: the energy ledger books electricity "
                "only (tariff, grid emission factor)")
    method = cfg.method or (EnergyMethod.COUNTER if m.kind == MetricKind.COUNTER else EnergyMethod.INTEGRATE)
    units = ENERGY_UNITS if method == EnergyMethod.COUNTER else POWER_UNITS
    if m.unit.lower() not in units:
        return f"metric {m.name!r} has unit {m.unit!r}; {method} needs one of {', '.join(units)}"
    return i, cfg, method, units[m.unit.lower()]


def metric_problems(dev: DeviceConfig, metrics: Sequence[MetricSpec]) -> list[tuple[tuple, str]]:
    """Processing keys of one device that name metrics it does not have: (key path within the
    device, message). Part of the config validation shared by ``check`` and ``run``."""
    names = [m.name for m in metrics]
    problems: list[tuple[tuple, str]] = []
    for metric in dev.checks:
        if metric not in names:
            problems.append((("checks", metric), _no_such_metric(metric, names)))
    anomaly = dev.anomaly
    if not isinstance(anomaly, bool):
        for j, metric in enumerate(anomaly):
            if metric not in names:
                problems.append((("anomaly", j), _no_such_metric(metric, names)))
    energy = resolve_energy(dev, metrics)
    if isinstance(energy, str):
        key = ("energy", "metric") if "has no metric" in energy else ("energy",)
        problems.append((key, energy))
    return problems


def _no_such_metric(metric: str, names: Sequence[str], device: str | None = None) -> str:
    from ..hints import no_such_metric  # the hints: only for a config that has a problem

    return no_such_metric(metric, names, device)
