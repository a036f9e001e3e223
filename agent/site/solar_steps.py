"""The site controller's part for sun and storage (agent.site.solar): charging modes, the battery's
set-point and the export cap written through the gate, and the energy book per session."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from agent.commands.gate import SITE, WriteGate
from agent.processing.carbon import CarbonFactors
from agent.processing.tariff import Tariff

from .allocator import Demand, fair_share
from .config import SiteConfig
from .flows import EnergyBook, split
from .measure import BaseEstimator
from .solar import Flows, Mode, SolarControl


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

    def _modes(self, demands: list[Demand], drawn_by: dict[str, float]) -> list[Demand]:
        """Cap each demand by its charging mode: off 0, PV-only its share of the surplus (paused below
        the minimum current), min+PV at least the minimum current."""
        assert self.solar is not None and self.flows is not None
        cfg = self.config
        modes = {d.name: self.solar.mode(d.name) for d in demands}
        pv = [d for d in demands if modes[d.name] in (Mode.PV, Mode.MINPV)]
        shares = fair_share(pv, self.solar.pv_shares(self.flows, drawn_by), min_a=cfg.min_current) if pv else {}
        out = []
        for d in demands:
            m = modes[d.name]
            if m is Mode.OFF:
                d = replace(d, cap_a=0.0)
            elif m is Mode.PV:
                d = replace(d, cap_a=min(d.cap_a, shares.get(d.name, 0.0)))
            elif m is Mode.MINPV:
                d = replace(d, cap_a=min(d.cap_a, max(cfg.min_current, shares.get(d.name, 0.0))))
            out.append(d)
        return out

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
        room = budget_w - charging - self.measure.unseen_increase(self._grid_ts)  # the cars come first
        target, why = s.battery_target(f, room)
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
