"""The site controller's part for sun and storage (agent.site.solar): charging modes, the battery's
set-point and the export cap written through the gate, and the energy book per session."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.commands.gate import SITE, WriteGate
from agent.processing.carbon import CarbonFactors
from agent.processing.tariff import Tariff

from .allocator import Demand
from .bases import Period
from .flows import EnergyBook, split
from .forecast import PvForecast
from .measure import BaseEstimator
from .planner import slots
from .pvmode import PvSwitch
from .solar import Flows, Mode, SolarControl

if TYPE_CHECKING:
    from .config import SiteConfig


class SolarSteps:
    """Mixed into :class:`agent.site.controller.SiteController`; uses its state."""

    config: SiteConfig
    solar: SolarControl | None
    flows: Flows | None
    gate: WriteGate
    alloc: dict[str, float]
    drivers: dict[str, Any]
    measure: BaseEstimator
    book: EnergyBook
    carbon: CarbonFactors | None
    plan_tariff: Tariff
    _voltage: float
    _phases: dict[str, int]
    _grid_ts: int
    _booked_ts: int
    _pending: list[dict[str, Any]]
    forecast: PvForecast | None
    pv_switch: PvSwitch
    _pv_only: set[str]
    _pv_caps: dict[str, float]
    _surplus_w: float
    _drawn: dict[str, float]  # what each charger draws at the grid reading's instant  # planned min+PV sessions: what the surplus gives them (A)

    def _value(self, device: str, metric: str) -> tuple[float, int]: ...

    def _book(self, grid_ts: int, drawn_by: dict[str, float]) -> None:
        """Book the flows since the last grid reading to each session (agent.site.flows)."""
        f, last = self.flows, self._booked_ts
        self._booked_ts = grid_ts
        if f is None or not f.fresh or not 0 < grid_ts - last <= 60_000:
            return
        factor = self.carbon.factor_at(grid_ts) if self.carbon is not None else 0.0
        self.book.step(split(f.pv_w, f.battery_w, f.grid_w), (grid_ts - last) / 1000, chargers_w=drawn_by,
                       factor_kg_kwh=factor, price_per_kwh=self.plan_tariff.price_at(grid_ts))

    def _align(self, key: str, ts: int, w: float) -> float:
        self.measure.observe(key, ts, w)
        return self.measure.drawn_at_meter(key, self._grid_ts, w)

    def _forecasting(self) -> bool:
        return self.forecast is not None and self.config.planner.enabled

    def _learn_pv(self) -> None:
        """Teach the PV forecast from the inverter's reading (skipped while curtailed: it says nothing of the sun)."""
        s, f = self.solar, self.flows
        if self.forecast is None or s is None or f is None or not f.fresh or s.config.inverter is None:
            return
        v, ts = self._value(s.config.inverter, s.config.pv_metric)
        cap_w = (s.cap_pct if s.cap_pct is not None else 100.0) / 100 * s.config.pv_peak_kw * 1000
        self.forecast.observe(ts, v, curtailed=cap_w < s.config.pv_peak_kw * 1000 and v >= 0.9 * cap_w)

    def _modes(self, demands: list[Demand], drawn_by: dict[str, float], now_ms: int) -> list[Demand]:
        """Cap each demand by its charging mode: off 0, PV-only its share of the surplus (with start and
        stop thresholds and minimum on/off times, agent.site.pvmode), min+PV at least the minimum current.
        With the planner and a PV forecast, min+PV is PV-only plus what the plan needs from the grid
        (see _planned): its PV part is kept in ``_pv_caps``."""
        assert self.solar is not None and self.flows is not None
        cfg = self.config
        modes = {d.name: self.solar.mode(d.name) for d in demands}
        self._pv_only = {n for n, m in modes.items() if m is Mode.PV}
        planned_minpv = {n for n, m in modes.items() if m is Mode.MINPV and self._forecasting()}
        pv = [d for d in demands if modes[d.name] in (Mode.PV, Mode.MINPV)]
        potential = (float(self.forecast.power_w(np.array([self._grid_ts]))[0])
                     if self.forecast is not None and self.forecast.ratio is not None else None)
        surplus = self.solar.pv_shares(self.flows, drawn_by, potential)
        caps, events = self.pv_switch.caps(pv, surplus, fresh=self.flows.fresh,
                                           min_a=cfg.min_current, now_ms=now_ms,
                                           switched=self._pv_only | planned_minpv) if pv else ({}, [])
        self._pending += events
        self._pv_caps = {n: caps.get(n, 0.0) for n in planned_minpv}
        # what the PV modes give (surplus, or the minimum a started car keeps): not capped by the TOU cap
        self._surplus_w = max(surplus, sum(caps.get(d.name, 0.0) * d.watts_per_amp for d in pv)) if pv else surplus
        out = []
        for d in demands:
            m = modes[d.name]
            if m is Mode.OFF:
                d = replace(d, cap_a=0.0)
            elif m is Mode.PV:
                d = replace(d, cap_a=min(d.cap_a, caps.get(d.name, 0.0)))
            elif m is Mode.MINPV and d.name not in planned_minpv:
                d = replace(d, cap_a=min(d.cap_a, max(cfg.min_current, caps.get(d.name, 0.0))))
            out.append(d)
        return out

    def _expected_pv_wh(self, demands: list[Demand], departures: dict[str, int], now_ms: int) -> dict[str, float]:
        """Surplus PV energy the forecast promises each planned min+PV session before it leaves (Wh): the
        forecast surplus over the site's own load now, shared equally among the PV-mode sessions, each at
        most what its car takes, times ``forecast_trust``."""
        assert self.forecast is not None and self.flows is not None and self.solar is not None
        names = [d.name for d in demands if d.name in self._pv_caps]
        if not names:
            return {}
        n_pv = len(names) + len(self._pv_only & {d.name for d in demands})
        end = max(departures[n] for n in names)
        if end <= now_ms:
            return {n: 0.0 for n in names}
        slot_ms = self.config.planner.slot_minutes * 60_000
        starts, secs = slots(now_ms, min(end, now_ms + 86_400_000), slot_ms)
        surplus = self.forecast.slot_energy_wh(starts, secs, self.flows.load_w, fresh=self.flows.fresh) / n_pv
        trust = self.solar.config.forecast_trust
        out = {}
        for d in demands:
            if d.name not in names:
                continue
            hours = np.clip((departures[d.name] - starts) / 1000.0, 0.0, secs) / 3600.0
            out[d.name] = trust * float(np.minimum(surplus * hours / np.maximum(secs / 3600, 1e-9),
                                                   d.cap_a * d.watts_per_amp * hours).sum())
        return out

    def _valley_left_s(self, now_ms: int) -> float | None:
        """Seconds left of the tariff's valley period now, None outside one."""
        t = now_ms + np.arange(0, 24 * 60, dtype=np.int64) * 60_000
        idx = self.plan_tariff.period_index(t)
        periods = list(self.plan_tariff.periods)
        if periods[int(idx[0])] != Period.VALLEY:
            return None
        other = np.flatnonzero(idx != periods.index(Period.VALLEY))
        end = int(t[other[0]]) - int(t[other[0]]) % 60_000 if other.size else int(t[-1])
        return max(0.0, (end - now_ms) / 1000)

    async def _solar_step(self, now_ms: int, budget_w: float) -> list[dict[str, Any]]:
        """Battery set-point and export cap, written through the gate with their reasons."""
        s, f = self.solar, self.flows
        if s is None or f is None:
            return []
        c = s.config
        events: list[dict[str, Any]] = []
        if f.fresh == s.failsafe:
            s.failsafe = not f.fresh
            events.append({"type": "site_solar_failsafe" if s.failsafe else "site_solar_recovered", "ts": now_ms,
                           "reason": f.reason or "inverter and battery readings are fresh again"})
        charging = sum(self.alloc.get(n, 0.0) * self._voltage * self._phases[n] for n in self.drivers)
        # chargers told to take less this step will soon draw less: the battery and the cap answer that too
        drop = sum(max(0.0, w - self.alloc.get(n, 0.0) * self._voltage * self._phases[n]) for n, w in self._drawn.items())
        if f.fresh and drop > 0:
            f = replace(f, grid_w=f.grid_w - drop)
        room = budget_w - charging - self.measure.unseen_increase(self._grid_ts)  # the cars come first
        valley = self._valley_left_s(now_ms) if c.valley_charge and f.fresh else None
        target, why = s.battery_target(f, room, valley)
        settled = s.settled(self._grid_ts, self.config.meter_lag) or not f.fresh
        if c.battery is not None:
            last = s.battery_set_w
            less_charging = last is not None and last < 0 and target > last
            if (settled or less_charging) and (last is None or abs(target - last) >= c.deadband_kw * 1000
                                               or (target == 0) != (last == 0)):
                try:
                    s.battery_set_w = float(await self.gate.write(c.battery, c.battery_point, round(target), by=SITE))
                    s.last_write_ms = now_ms
                    events.append({"type": "site_battery", "ts": now_ms, "device": c.battery, "set_w": s.battery_set_w,
                                   "soc": None if math.isnan(f.soc) else round(f.soc, 1), "reason": why})
                except Exception as e:  # noqa: BLE001 - the chargers' control goes on
                    events.append({"type": "site_write_failed", "ts": now_ms, "device": c.battery,
                                   "reason": f"{type(e).__name__}: {e}"})
        cap, why = s.export_cap(f, s.battery_set_w if s.battery_set_w is not None else f.battery_w)
        lower = cap is not None and cap < (s.cap_pct if s.cap_pct is not None else 100.0)  # curtailing is never held
        if cap is not None and cap != s.cap_pct and c.inverter is not None and (settled or lower):
            try:
                s.cap_pct = float(await self.gate.write(c.inverter, c.export_point, cap, by=SITE))
                s.last_write_ms = now_ms
                events.append({"type": "site_export_cap", "ts": now_ms, "device": c.inverter, "cap_pct": s.cap_pct,
                               "reason": why})
            except Exception as e:  # noqa: BLE001
                events.append({"type": "site_write_failed", "ts": now_ms, "device": c.inverter,
                               "reason": f"{type(e).__name__}: {e}"})
        return events
