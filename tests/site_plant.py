"""A closed-loop site plant in simulated time: building load, cars that ramp, PV with passing clouds and a
battery behind a grid meter that shows the site's power late, polled like the agent polls them.

Test and benchmark support, not part of the agent. The controller is the real :class:`SiteController`
reading a real ``LatestValues`` table and writing through a real :class:`WriteGate` (chargers and the
SunSpec inverter with its real config declaration); the cars, the building, the PV array and the
battery are models (drivers.charger_common.EvseModel, drivers.sunspec.simmodel).

Each tick of ``tick_s``: cars arrive and leave; when a poll is due the meter is read (its value is the
site's power ``meter_lag_s`` ago), then the chargers (``charger_offset_s`` later) and the inverter,
then the controller steps; the site's physical power is recorded as a sample and the plant advances.
With ``tick_s = poll_s = 60`` and no lag this is a day in 1-minute steps (the bench); with 0.25 s ticks,
1 s polls, 1 s meter lag and ramping cars it is the loop of tests/site_loop.py in simulated time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.commands.gate import WriteGate
from agent.model import MetricSpec
from agent.processing.tariff import Tariff
from agent.series import LatestValues, SeriesTable
from agent.site.config import SiteConfig
from agent.site.controller import SiteController
from drivers.charger_common import CHARGER_METRICS, EvseModel
from drivers.sunspec.driver import SunSpecConfig
from drivers.sunspec.simmodel import Battery, PvArray
from tests.site_day import DayResult, ModelCharger, Visit, _leave, _SimClock, model_charger_config

LON_SHANGHAI = 121.5


class SolarModel:
    """A hybrid inverter: PV (capped by its power limit, % of the array) and a battery (set-point, ramp)."""

    def __init__(self, pv: PvArray, battery: Battery | None, *, start_ms: int, t: list[float],
                 lon_deg: float = LON_SHANGHAI, instant: bool = False):
        self.pv, self.battery, self.start_ms, self.t, self.lon = pv, battery, start_ms, t, lon_deg
        self.instant = instant
        self.cap_pct = 100.0
        self.pv_wh = 0.0  # delivered (after curtailment)
        self.available_wh = 0.0  # what the array could have delivered uncurtailed

    def config(self, name: str) -> SunSpecConfig:
        rating = self.battery.max_charge_w if self.battery is not None else None
        models = [103, 123] + ([124] if self.battery is not None else [])
        return SunSpecConfig.model_validate({
            "name": name, "type": "sunspec", "models": models, "unit": 1, "line": "solar",
            "writable": ["power_limit"] + (["battery_power"] if self.battery is not None else []),
            "battery_max_w": rating})

    async def write(self, point: str, value: float | None) -> float:
        assert value is not None
        if point == "power_limit":
            self.cap_pct = value
        elif point == "battery_power" and self.battery is not None:
            self.battery.setpoint_w = value
            if self.instant:  # steps longer than its ramp: it follows at once
                self.battery.power_w = self.battery._allowed(value)
        else:
            raise ValueError(f"no point {point}")
        return value

    def available_w(self) -> float:
        return self.pv.power_w(((self.start_ms / 1000 + self.t[0]) / 3600 + self.lon / 15) % 24)

    def pv_w(self) -> float:
        return min(self.available_w(), self.cap_pct / 100 * self.pv.peak_w)

    def battery_w(self) -> float:
        return self.battery.power_w if self.battery is not None else 0.0

    def soc(self) -> float:
        return self.battery.soc if self.battery is not None else math.nan

    def advance(self, dt: float) -> None:
        self.pv_wh += self.pv_w() * dt / 3600
        self.available_wh += self.available_w() * dt / 3600
        self.pv.step_clouds(dt)
        if self.battery is not None:
            self.battery.advance(dt)


@dataclass
class PlantResult(DayResult):
    samples: int = 0
    worst_grid_w: float = -math.inf  # the highest physical import on any sample
    worst_export_w: float = 0.0  # the highest export on any sample
    soc_range: tuple[float, float] = (math.nan, math.nan)  # %
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    pv_kwh: float = 0.0
    pv_available_kwh: float = 0.0
    grid_cost: float = 0.0  # the site's import at the tariff's price
    grid_kgco2e: float = 0.0
    meter_log: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)  # t, grid, charging, pv, batt, soc

    @property
    def self_consumption(self) -> float:
        """Share of the PV energy used on site (by the building, the cars or the battery)."""
        return 1 - min(self.export_kwh, self.pv_kwh) / self.pv_kwh if self.pv_kwh > 0 else math.nan


async def run_plant(
    site: SiteConfig,
    *,
    visits: list[Visit],
    chargers: int,
    start_ms: int,
    seconds: float,
    base_w: Callable[[float], float],
    tariff: Tariff,
    solar: Callable[[list[float]], SolarModel] | None = None,
    tick_s: float = 0.25,
    poll_s: float = 1.0,
    meter_lag_s: float = 1.0,
    charger_offset_s: float = 0.5,
    ramp_a_s: tuple[float, float] | None = (8.0, 16.0),
    charger_max_a: float = 32.0,
    carbon_kg_kwh: float = 0.5617,
    inverter_outage: tuple[float, float] | None = None,
    keep_log: bool = False,
    on_step: Callable[[float, SiteController, list[dict[str, Any]]], None] | None = None,
) -> PlantResult:
    t_ref = [0.0]
    names = [f"cp{i + 1}" for i in range(chargers)]
    up, down = ramp_a_s if ramp_a_s is not None else (None, None)
    evses = [EvseModel(max_a=charger_max_a, ramp_up_a_s=up, ramp_down_a_s=down) for _ in names]
    drivers: dict[str, Any] = {n: ModelCharger(e, lambda: t_ref[0]) for n, e in zip(names, evses, strict=True)}
    configs: dict[str, Any] = {n: model_charger_config(n, max_a=charger_max_a) for n in names}
    table = SeriesTable()
    table.add_device("grid", [MetricSpec("power", "W")])
    for n in names:
        table.add_device(n, CHARGER_METRICS)
    sun = solar(t_ref) if solar is not None else None
    if sun is not None:
        table.add_device("inv", [MetricSpec("pv_power", "W"), MetricSpec("battery_power", "W"),
                                 MetricSpec("battery_soc", "%")])
        drivers["inv"] = sun
        configs["inv"] = sun.config("inv")
    latest = LatestValues(len(table))
    clock = _SimClock(start_ms, t_ref)
    gate = WriteGate(configs, drivers, clock)
    ctl = SiteController(site, drivers, latest, table, clock, tariff,
                         charger_configs={n: configs[n] for n in names}, gate=gate)
    res = PlantResult("plant")
    history_t: list[float] = []
    history_w: list[float] = []
    present: dict[int, Visit] = {}
    queue = sorted(visits, key=lambda v: v.arrive_s)
    vi, t, next_poll = 0, 0.0, 0.0
    socs: list[float] = []
    by_minute: dict[int, tuple[float, str]] = {}
    limit = site.limit_w

    def put(sid_vals: list[tuple[int, float]], ts_ms: int) -> None:
        k = len(sid_vals)
        latest.update(np.array([s for s, _ in sid_vals], np.int32), np.full(k, ts_ms, np.int64),
                      np.array([v for _, v in sid_vals], np.float64), np.zeros(k, np.uint32))

    def physical() -> float:
        pv = sun.pv_w() if sun is not None else 0.0
        return base_w(t) + sum(e.power_w(t) for e in evses) - pv - (sun.battery_w() if sun is not None else 0.0)

    while t < seconds:
        t_ref[0] = t
        for c, v in list(present.items()):
            if t >= v.leave_s:
                _leave(res, v, evses[c].session_wh)
                evses[c].unplug(t)
                del present[c]
        while vi < len(queue) and queue[vi].arrive_s <= t:
            v = queue[vi]
            vi += 1
            if v.charger not in present:
                evses[v.charger].plug(v.car, t)
                present[v.charger] = v
                ctl.set_session(names[v.charger], departure_ms=start_ms + int(v.leave_s * 1000),
                                energy_kwh=v.car.need_wh / 1000, car_max_a=v.car.max_a)
        for e in evses:
            e.advance(t)
        if t + 1e-9 >= next_poll:
            next_poll += poll_s
            i = bisect.bisect_right(history_t, t - meter_lag_s) - 1
            shown = history_w[max(0, i)] if history_t and meter_lag_s > 0 else physical()
            now_ms = start_ms + int(t * 1000)
            put([(table.id("grid", "power"), shown)], now_ms)
            t_ref[0] = t + charger_offset_s * (tick_s < poll_s)
            vals = []
            for n in names:
                idx = table.index(n)
                vals += [(idx[s.metric], s.value) for s in drivers[n].status().samples()]
            put(vals, clock.now_ms())
            if sun is not None and not (inverter_outage and inverter_outage[0] <= t < inverter_outage[1]):
                put([(table.id("inv", "pv_power"), sun.pv_w()), (table.id("inv", "battery_power"), sun.battery_w()),
                     (table.id("inv", "battery_soc"), sun.soc() * 100)], clock.now_ms())
            events = await ctl.step(clock.now_ms())
            t_ref[0] = t
            res.events += events
            if on_step is not None:
                on_step(t, ctl, events)
        w = physical()
        history_t.append(t)
        history_w.append(w)
        if len(history_t) > 2000:
            del history_t[:1000], history_w[:1000]
        charging = sum(e.power_w(t) for e in evses)
        res.samples += 1
        res.worst_grid_w = max(res.worst_grid_w, w)
        res.worst_export_w = max(res.worst_export_w, -w)
        res.peak_grid_kw = max(res.peak_grid_kw, w / 1000)
        res.steps_over_limit += w > limit
        if sun is not None and sun.battery is not None:
            socs.append(sun.soc() * 100)
        if keep_log:
            res.meter_log.append((t, w, charging, sun.pv_w() if sun else 0.0, sun.battery_w() if sun else 0.0,
                                  sun.soc() * 100 if sun else math.nan))
        now_ms = start_ms + int(t * 1000)
        h = tick_s / 3600
        imp, exp = max(0.0, w) * h / 1000, max(0.0, -w) * h / 1000
        res.import_kwh += imp
        res.export_kwh += exp
        minute = now_ms // 60_000
        if minute not in by_minute:  # tariffs change on whole minutes
            by_minute.clear()
            by_minute[minute] = (tariff.price_at(now_ms), tariff.period_at(now_ms))
        price, period = by_minute[minute]
        res.grid_cost += imp * price
        res.grid_kgco2e += imp * carbon_kg_kwh
        before = sum(e.total_wh for e in evses)
        for e in evses:
            e.advance(t + tick_s)
        kwh = (sum(e.total_wh for e in evses) - before) / 1000
        res.energy_kwh += kwh
        res.valley_kwh += kwh if period == "valley" else 0.0
        res.cost += kwh * price
        res.kgco2e += kwh * carbon_kg_kwh
        if sun is not None:
            sun.advance(tick_s)
        t += tick_s
    for c, v in present.items():
        _leave(res, v, evses[c].session_wh)
    if sun is not None:
        res.pv_kwh = sun.pv_wh / 1000
        res.pv_available_kwh = sun.available_wh / 1000
    if socs:
        res.soc_range = (min(socs), max(socs))
    return res
