"""The processing config's run-time side, without pydantic: its enums and the device energy source.

The models (:mod:`agent.processing.config`) validate; the running agent reads their plain twins
(:mod:`agent.contract.plain`) and calls these.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..contract.enums import EnergyMethod
from ..model import MetricKind, MetricSpec

if TYPE_CHECKING:
    from ..contract.config import DeviceConfig
    from ..contract.options import EnergyConfig


class WindowSize(enum.StrEnum):
    S10 = "10s"
    M1 = "1m"
    M15 = "15m"
    H1 = "1h"

    @property
    def ms(self) -> int:
        return {"10s": 10_000, "1m": 60_000, "15m": 900_000, "1h": 3_600_000}[self.value]


class JitMode(enum.StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class DefaultEnergy:
    """The energy source a device without an ``energy`` table gets (its single kWh counter): an
    :class:`~agent.contract.options.EnergyConfig` with its defaults (a test checks they agree)."""

    metric: str
    method: EnergyMethod | None = None
    rollover: float = 0.0
    max_power_w: float | None = None
    max_step_kwh: float | None = None


ENERGY_UNITS = {"wh": 1e-3, "kwh": 1.0, "mwh": 1e3}  # register unit -> kWh
POWER_UNITS = {"w": 1e-3, "kw": 1.0, "mw": 1e3}  # power unit -> kW (integration gives unit x h)


def _energy_choice(dev: DeviceConfig, metrics: Sequence[MetricSpec]) -> tuple[int, EnergyConfig | DefaultEnergy] | str | None:
    cfg = dev.energy
    names = [m.name for m in metrics]
    if cfg is not None:
        if cfg.metric not in names:
            return no_such_metric(cfg.metric, names)
        return names.index(cfg.metric), cfg
    counters = [i for i, m in enumerate(metrics)
                if m.kind == MetricKind.COUNTER and m.unit.lower() in ENERGY_UNITS and not m.medium]
    if len(counters) == 1:
        return counters[0], DefaultEnergy(metric=names[counters[0]])
    return None


def resolve_energy(dev: DeviceConfig, metrics: Sequence[MetricSpec]) -> tuple[int, EnergyConfig | DefaultEnergy, EnergyMethod, float] | str | None:
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
            problems.append((("checks", metric), no_such_metric(metric, names)))
    anomaly = dev.anomaly
    if not isinstance(anomaly, bool):
        for j, metric in enumerate(anomaly):
            if metric not in names:
                problems.append((("anomaly", j), no_such_metric(metric, names)))
    energy = resolve_energy(dev, metrics)
    if isinstance(energy, str):
        key = ("energy", "metric") if "has no metric" in energy else ("energy",)
        problems.append((key, energy))
    return problems


def no_such_metric(metric: str, names: Sequence[str], device: str | None = None) -> str:
    from ..hints import no_such_metric as hint  # the hints: only for a config that has a problem

    return hint(metric, names, device)
