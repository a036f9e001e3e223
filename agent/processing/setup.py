"""Per-series parameter arrays built once from the config and the series table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..contract.enums import EnergyMethod
from ..errors import ConfigError
from ..model import MetricKind, MetricSpec
from ..series import SeriesTable
from .kernels.counters import MODE_COUNTER, MODE_INTEGRATE, MODE_RESTARTS
from .options import metric_problems, resolve_energy

if TYPE_CHECKING:
    from .config import CheckConfig, ProcessingConfig

MS_HOUR = 3_600_000.0
POWER_MARGIN = 1.5  # a meter's rating x this is the most a counter can rise (overload, voltage tolerance)
FALLBACK_MAX_POWER_W = 1.0e6  # an energy register without a rating: a 1,000 kVA transformer's worth


@dataclass(slots=True)
class SeriesParams:
    gap_ms: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    stuck_n: np.ndarray
    stuck_tol: np.ndarray
    max_rate: np.ndarray
    stale_ms: np.ndarray
    mode: np.ndarray
    rollover: np.ndarray
    max_step: np.ndarray
    max_rise: np.ndarray  # counters: the most a register can rise per millisecond
    significant: np.ndarray  # detector: the smallest departure that can be an anomaly
    significant_rel: np.ndarray  # ... as a fraction of the baseline
    detect: np.ndarray
    meter_of: np.ndarray  # meter index for the energy series, -1 otherwise
    kwh_factor: np.ndarray
    meters: list[str]
    methods: list[str]


def build_params(pc: ProcessingConfig, devices: dict, table: SeriesTable) -> SeriesParams:
    n = len(table)
    p = SeriesParams(
        gap_ms=np.full(n, 60_000, np.int64), lo=np.full(n, -np.inf), hi=np.full(n, np.inf),
        stuck_n=np.zeros(n, np.int64), stuck_tol=np.zeros(n), max_rate=np.full(n, np.inf),
        stale_ms=np.zeros(n, np.int64), mode=np.zeros(n, np.int8), rollover=np.zeros(n),
        max_step=np.full(n, np.inf), max_rise=np.full(n, np.inf), significant=np.zeros(n), significant_rel=np.zeros(n),
        detect=np.zeros(n, np.bool_), meter_of=np.full(n, -1, np.int64),
        kwh_factor=np.zeros(n), meters=[], methods=[],
    )
    for name in table.devices():
        dev = devices.get(name)
        ids = table.device_ids(name)
        poll = dev.poll_interval if dev is not None else 5.0
        anomaly = dev.anomaly if dev is not None else True
        for i in ids:
            s = table[i]
            p.gap_ms[i] = max(1, int(round(pc.gap_factor * poll * 1000)))
            p.lo[i] = -np.inf if s.valid_min is None else s.valid_min  # the sensor's specified range
            p.hi[i] = np.inf if s.valid_max is None else s.valid_max
            p.significant[i] = s.significant
            p.significant_rel[i] = s.significant_rel
            if s.kind == MetricKind.COUNTER:
                p.mode[i] = MODE_RESTARTS if s.restarts else MODE_COUNTER
                if s.max_per_hour is not None:
                    p.max_rise[i] = POWER_MARGIN * s.max_per_hour / MS_HOUR
            elif s.kind == MetricKind.GAUGE and pc.anomaly.enabled:
                # by default only metrics that carry information of their own (not derived or max-hold)
                p.detect[i] = (anomaly is True and s.anomaly) or (not isinstance(anomaly, bool) and s.metric in anomaly)
        idx = table.index(name)
        specs = [MetricSpec(table[i].metric, table[i].unit, table[i].kind, medium=table[i].medium) for i in ids]
        if dev is not None:
            # the config validation (check and run) reports these with file and line; this guard
            # only serves code that builds a Processor from an unvalidated config
            problems = [f"devices.{name}.{'.'.join(map(str, sub))}: {msg}" for sub, msg in metric_problems(dev, specs)]
            if problems:
                raise ConfigError(problems)
        checks: dict[str, CheckConfig] = dev.checks if dev is not None else {}
        for metric, c in checks.items():
            i = idx[metric]
            if c.min is not None:  # a bound not given keeps the sensor's own
                p.lo[i] = c.min
            if c.max is not None:
                p.hi[i] = c.max
            p.stuck_n[i] = c.stuck_samples
            p.stuck_tol[i] = c.stuck_tolerance
            p.max_rate[i] = np.inf if c.max_rate is None else c.max_rate
            p.stale_ms[i] = 0 if c.stale_after is None else int(c.stale_after * 1000)
        if dev is None:
            continue
        energy = resolve_energy(dev, specs)
        if not isinstance(energy, tuple):
            continue
        local, cfg, method, factor = energy
        i = ids[local]
        p.kwh_factor[i] = factor
        if method == EnergyMethod.INTEGRATE:
            p.mode[i] = MODE_INTEGRATE
        elif p.mode[i] != MODE_RESTARTS:
            p.mode[i] = MODE_COUNTER
        p.rollover[i] = cfg.rollover
        if cfg.max_step_kwh is not None:
            p.max_step[i] = cfg.max_step_kwh / factor
        if method != EnergyMethod.INTEGRATE:
            if cfg.max_power_w is not None:  # kW per hour in kWh, over the register's unit
                p.max_rise[i] = POWER_MARGIN * cfg.max_power_w / 1000.0 / factor / MS_HOUR
            elif not np.isfinite(p.max_rise[i]):
                p.max_rise[i] = POWER_MARGIN * FALLBACK_MAX_POWER_W / 1000.0 / factor / MS_HOUR
        p.meter_of[i] = len(p.meters)
        p.meters.append(name)
        p.methods.append(str(method))
    return p
