"""Simulate a site over a day: base load, cars arriving and leaving, chargers, and a charging strategy.

Test and benchmark support, not part of the agent: used by the tests (the site limit holds on every
step) and by ``tests/bench/bench_site_day.py`` (charge-as-fast-as-possible versus the site
controller). The controller under test is the real
:class:`SiteController`, reading a real ``LatestValues`` table; only the cars and the building are models.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.model import MetricSpec
from agent.processing.tariff import Tariff
from agent.series import LatestValues, SeriesTable
from agent.site.config import SiteConfig
from agent.site.controller import SiteController
from drivers.charger_common import (
    CHARGER_METRICS,
    Car,
    ChargerConfig,
    ChargerDriver,
    ChargerStatus,
    EvseModel,
)

DAY_START_MS = 1_700_000_000_000 - (1_700_000_000_000 + 8 * 3_600_000) % 86_400_000  # a local (+8) midnight


class ModelCharger(ChargerDriver):
    """A charger driver over an :class:`EvseModel` (writes apply at once; ``status`` is one poll)."""

    def __init__(self, evse: EvseModel, now: Callable[[], float]):
        self.evse = evse
        self.now = now

    async def set_current_limit(self, amps: float) -> float:
        self.evse.set_limit(amps, self.now())
        return self.evse.limit_a

    async def start(self) -> bool:
        self.evse.set_enabled(True, self.now())
        return True

    async def stop(self) -> bool:
        self.evse.set_enabled(False, self.now())
        return True

    def status(self) -> ChargerStatus:
        t = self.now()
        e = self.evse
        i = e.current_a(t)
        ph = e.phases()
        return ChargerStatus(state=e.state(t), enabled=e.enabled, current_limit=e.offered_a(t),
                             current_l1=i, current_l2=i if ph == 3 else 0.0, current_l3=i if ph == 3 else 0.0,
                             power=e.power_w(t), session_energy=e.session_wh / 1000, energy_total=e.total_wh / 1000)


def model_charger_config(name: str, min_a: float = 6.0, max_a: float = 32.0, *, phases: int = 3) -> ChargerConfig:
    """The config of a simulated charger the site manages: its current limit writable up to ``max_a``."""
    return ChargerConfig.model_validate({"name": name, "type": "model_charger", "phases": phases,
                                         "writable": ["current_limit", "start", "stop"],
                                         "current_limit_bounds": [min_a, max_a]})


@dataclass
class Visit:
    charger: int
    arrive_s: float
    leave_s: float
    car: Car


@dataclass
class DayResult:
    strategy: str
    peak_grid_kw: float = 0.0
    energy_kwh: float = 0.0
    requested_kwh: float = 0.0  # what the cars that left today wanted
    on_time_kwh: float = 0.0  # what they had got when they left
    kgco2e: float = 0.0
    sessions: int = 0
    sessions_short: int = 0  # left with less than they wanted (more than 0.1 kWh less)
    unmet_kwh: float = 0.0
    valley_kwh: float = 0.0
    peak_kwh: float = 0.0
    cost: float = 0.0
    steps_over_limit: int = 0
    max_charging_over_budget_w: float = -math.inf  # charger power - (limit - base); <= 0 means the limit held
    events: list[dict[str, Any]] = field(default_factory=list)
    short: list[tuple[int, float, float, float]] = field(default_factory=list)  # charger, left at (s), wanted, got (kWh)

    @property
    def valley_share(self) -> float:
        return self.valley_kwh / self.energy_kwh if self.energy_kwh else 0.0


def random_visits(*, chargers: int, seed: int, day_s: float = 86_400) -> list[Visit]:
    """Taxi-and-office mix: some arrive in the evening and stay overnight, some top up in the day."""
    rng = random.Random(seed)
    visits: list[Visit] = []
    for c in range(chargers):
        t = rng.uniform(0, 3 * 3600)
        while t < day_s - 1800:
            hour = (t / 3600) % 24
            overnight = hour >= 17 or hour < 3
            dwell = rng.uniform(8, 11) * 3600 if overnight else rng.uniform(1, 4) * 3600
            need = rng.uniform(20_000, 45_000) if overnight else rng.uniform(6_000, 18_000)
            car = Car(need_wh=need, max_a=rng.choice([16.0, 32.0, 32.0]), phases=3, id_tag=f"V{len(visits)}")
            leave = t + dwell  # may be tomorrow morning: the day runs on until the last car has left
            visits.append(Visit(c, t, leave, car))
            t = leave + rng.uniform(0.2, 2) * 3600
    return visits


def taxi_visits(*, chargers: int, seed: int, sessions: int = 550, day_s: float = 86_400,
                max_a: float = 174.0) -> list[Visit]:
    """A taxi fast-charging station: arrivals peak at shift change and meal times; short, full-power stays.

    Each taxi wants 15-45 kWh and stays 1.3-3x the time a full-power charge would take (queueing, a
    meal, paperwork); it takes the first free charger, waiting if none is free.
    """
    rng = random.Random(seed)
    weights = [1.5, 1, 0.6, 1.2, 2.5, 3, 2, 1.2, 1, 1, 1.5, 2.5, 2.5, 1.5, 1.2, 2.5, 3, 2, 1.2, 1, 1.2, 1.5, 1.5, 1.5]
    total = sum(weights)
    arrivals = sorted(h * 3600 + rng.uniform(0, 3600) for h in rng.choices(range(24), weights=[w / total for w in weights],
                                                                             k=sessions))
    free_at = [0.0] * chargers
    visits: list[Visit] = []
    for t in arrivals:
        c = min(range(chargers), key=lambda i: free_at[i])
        start = max(t, free_at[c])
        if start >= day_s - 600:
            continue
        car_a = rng.uniform(0.5, 1.0) * max_a
        need = rng.uniform(15_000, 45_000)
        stay = need / (car_a * 690.0) * 3600 * rng.uniform(1.3, 3.0)
        leave = start + max(stay, 900.0)
        visits.append(Visit(c, start, leave, Car(need_wh=need, max_a=car_a, phases=3, id_tag=f"T{len(visits)}")))
        free_at[c] = leave + 60
    return visits


def base_load_w(t_s: float, rng: random.Random, *, peak_w: float = 30_000) -> float:
    hour = (t_s / 3600) % 24
    daytime = math.exp(-((hour - 13) ** 2) / 18)
    return peak_w * (0.3 + 0.6 * daytime) * rng.uniform(0.9, 1.1)


async def run_day(
    site: SiteConfig | None,
    *,
    chargers: int = 6,
    seed: int = 7,
    step_s: float = 60.0,
    day_start_ms: int = DAY_START_MS,
    tariff: Tariff | None = None,
    meter_outage: tuple[float, float] | None = None,
    on_step: Callable[[float, float, float, SiteController | None], None] | None = None,
    limit_w: float | None = None,
    label: str = "",
    visits: list[Visit] | None = None,
    charger_max_a: float = 32.0,
    base_peak_w: float = 30_000,
    carbon: Callable[[int], float] | None = None,
    tell_departures: bool = True,
) -> DayResult:
    """Run one day of arrivals (and on until the last car has left). ``site`` None = every charger
    offers its maximum ("as fast as possible").

    ``visits`` default: :func:`random_visits`. With ``tell_departures`` each arriving car's departure
    and energy are given to the controller (as a fleet system or a driver's app would).
    ``carbon(ts_ms)`` is the grid emission factor in kgCO2e/kWh (default 0.5617, East China 2022).
    """
    clock_t = [0.0]
    names = [f"cp{i + 1}" for i in range(chargers)]
    evses = [EvseModel(max_a=charger_max_a) for _ in names]
    drivers = {n: ModelCharger(e, lambda: clock_t[0]) for n, e in zip(names, evses, strict=True)}
    table = SeriesTable()
    table.add_device("grid", [MetricSpec("power", "W")])
    for n in names:
        table.add_device(n, CHARGER_METRICS)
    latest = LatestValues(len(table))
    tariff = tariff or Tariff()
    clock = _SimClock(day_start_ms, clock_t)
    controller = None
    if site is not None:
        configs = {n: model_charger_config(n, max_a=charger_max_a) for n in names}
        controller = SiteController(site, drivers, latest, table, clock, tariff, charger_configs=configs)
    limit = limit_w if limit_w is not None else (site.limit_w if site is not None else math.inf)
    carbon = carbon or (lambda _ts: 0.5617)
    if visits is None:
        visits = random_visits(chargers=chargers, seed=seed, day_s=86_400)
    visits = sorted(visits, key=lambda v: v.arrive_s)
    present: dict[int, Visit] = {}
    rng = random.Random(seed + 1)
    res = DayResult(label or ("as fast as possible" if site is None else "site controller"))
    vi = 0
    t = 0.0
    end_s = max([86_400.0] + [v.leave_s for v in visits])
    while t < end_s:
        clock_t[0] = t
        now_ms = day_start_ms + int(t * 1000)
        for c, v in list(present.items()):
            if t >= v.leave_s:
                _leave(res, v, evses[c].session_wh)
                evses[c].unplug(t)
                del present[c]
        while vi < len(visits) and visits[vi].arrive_s <= t:
            v = visits[vi]
            vi += 1
            if v.charger not in present:
                evses[v.charger].plug(v.car, t)
                present[v.charger] = v
                if controller is not None and tell_departures:
                    controller.set_session(names[v.charger], departure_ms=day_start_ms + int(v.leave_s * 1000),
                                           energy_kwh=v.car.need_wh / 1000, car_max_a=v.car.max_a)
        base = base_load_w(t, rng, peak_w=base_peak_w)
        grid = base + sum(e.power_w(t) for e in evses)
        _publish(latest, table, names, drivers, grid, now_ms, meter_outage=meter_outage, t=t)
        if controller is not None:
            res.events += await controller.step(now_ms)
        charging = sum(e.power_w(t) for e in evses)
        grid = base + charging
        res.peak_grid_kw = max(res.peak_grid_kw, grid / 1000)
        res.steps_over_limit += grid > limit
        res.max_charging_over_budget_w = max(res.max_charging_over_budget_w, charging - max(0.0, limit - base))
        if on_step is not None:
            on_step(t, base, charging, controller)
        before = sum(e.total_wh for e in evses)
        for e in evses:
            e.advance(t + step_s)
        kwh = (sum(e.total_wh for e in evses) - before) / 1000
        period = tariff.period_at(now_ms)
        res.energy_kwh += kwh
        res.valley_kwh += kwh if period == "valley" else 0.0
        res.peak_kwh += kwh if period == "peak" else 0.0
        res.cost += kwh * tariff.price_at(now_ms)
        res.kgco2e += kwh * carbon(now_ms)
        t += step_s
    for c, v in present.items():
        _leave(res, v, evses[c].session_wh)
    return res


def _leave(res: DayResult, v: Visit, got_wh: float) -> None:
    res.sessions += 1
    res.requested_kwh += v.car.need_wh / 1000
    res.on_time_kwh += min(got_wh, v.car.need_wh) / 1000
    short = max(0.0, v.car.need_wh - got_wh) / 1000
    res.unmet_kwh += short
    if short > 0.1:
        res.sessions_short += 1
        res.short.append((v.charger, v.leave_s, v.car.need_wh / 1000, got_wh / 1000))


class _SimClock:
    def __init__(self, start_ms: int, t: list[float]):
        self.start_ms = start_ms
        self.t = t

    def now_ms(self) -> int:
        return self.start_ms + int(self.t[0] * 1000)

    def monotonic(self) -> float:
        return self.t[0]


def _publish(latest, table, names, drivers, grid_w, now_ms, *, meter_outage, t) -> None:
    sids, vals = [], []
    if meter_outage is None or not (meter_outage[0] <= t < meter_outage[1]):
        sids.append(table.id("grid", "power"))
        vals.append(grid_w)
    for n in names:
        idx = table.index(n)
        for s in drivers[n].status().samples():
            sids.append(idx[s.metric])
            vals.append(s.value)
    k = len(sids)
    latest.update(np.asarray(sids, np.int32), np.full(k, now_ms, np.int64), np.asarray(vals, np.float64),
                  np.zeros(k, np.uint32))
