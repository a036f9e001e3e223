"""Site load management: keep the grid connection under its limit, share current fairly, prefer cheap hours.

Call ``await step(now_ms)`` once per poll interval. Each step reads the grid meter and the chargers
from ``LatestValues``, computes allocations (agent.site.allocator) and writes only the ones that
changed, through the write gate (agent.commands.gate: declared writable, bounded, audited; 0 = pause).
If the grid meter's data is stale, every charger falls back to ``safe_current`` in that same step.

Charging is capped and planned by the same tariff object that energy accounting bills by.

With ``[site.planner]`` enabled, each step replans every session to its departure (agent.site.planner)
and offers each charger what the plan gives it now; a session that cannot get its energy in time is
reported at once (``site_shortfall``). Sites limited in A per phase are checked phase by phase.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agent.commands.gate import SITE, WriteGate, Writer
from agent.commands.parse import Action, Code, Refusal
from agent.commands.session import SessionRequest
from agent.contract import Clock
from agent.contract.charger import ChargerMetric, ChargerPoint, IecState
from agent.model import Quality
from agent.processing.carbon import CarbonFactors
from agent.processing.tariff import Tariff
from agent.series import LatestValues, SeriesTable

from .allocator import Demand, allocate, allocate_in_order, hold_back
from .flows import EnergyBook
from .forecast import PvForecast
from .measure import BaseEstimator
from .phases import fit_phases
from .planner import Headroom, plan
from .pvmode import PvSwitch
from .sessions import SessionBook, next_local_time
from .solar import Flows, SolarControl
from .solar_steps import SolarSteps

if TYPE_CHECKING:
    from agent.contract.charger_config import ChargerKeys

    from .config import SiteConfig

log = logging.getLogger(__name__)


class SiteController(SolarSteps):
    def __init__(
        self,
        config: SiteConfig,
        drivers: Mapping[str, Any],
        latest: LatestValues,
        series: SeriesTable,
        clock: Clock | None = None,
        tariff: Tariff | None = None,
        *,
        charger_configs: Mapping[str, ChargerKeys],
        carbon: CarbonFactors | None = None,
        gate: WriteGate | None = None,
    ):
        self.config = config
        self.drivers = {n: drivers[n] for n in config.chargers}
        self.latest = latest
        self.series = series
        self.clock = clock or Clock()
        self.gate = gate or WriteGate(charger_configs, self.drivers, self.clock)
        self.plan_tariff = tariff or Tariff()
        self.tariff = self.plan_tariff if config.tou.enabled and not config.planner.enabled else None
        self._phases = {n: charger_configs[n].phases for n in config.chargers}
        self._wired = {n: ((0, 1, 2) if self._phases[n] == 3 else (config.charger_phase.get(n, 1) - 1,))
                       for n in config.chargers}
        self.sessions = SessionBook(config, self.clock, self.plan_tariff)
        self.carbon = carbon
        self.last_plan = None
        self._last_plan_ms = 0
        self._voltage = config.voltage
        self.alloc: dict[str, float] = {}  # what we last wrote, per charger
        self.user_limit: dict[str, float] = {}
        self.user_stopped: set[str] = set()
        self.boost_until: dict[str, int] = {}
        self._since: dict[str, int] = {}
        self._car_caps: dict[str, float] = {}  # what the plugged-in car seems to take at most
        self.failsafe = False
        self._meter_sid = series.id(config.grid_meter.device, config.grid_meter.metric)
        self.measure = BaseEstimator(meter_lag_s=config.meter_lag, car_ramp_s=config.car_ramp, limit_w=config.limit_w)
        self.solar = SolarControl(config.solar, self._value, align=self._align) if config.solar is not None else None
        self.flows: Flows | None = None
        sc = config.solar
        self.pv_switch = PvSwitch(sc) if sc is not None else None  # type: ignore[assignment]
        self.forecast = (PvForecast(sc.latitude, sc.longitude, sc.pv_peak_kw * 1000, sc.forecast_tau_h * 3600)
                         if sc is not None and sc.latitude is not None and sc.longitude is not None else None)
        self._pv_only: set[str] = set()
        self._pv_caps: dict[str, float] = {}
        self._drawn: dict[str, float] = {}
        self._surplus_w = 0.0
        self._grid_ts = 0
        self.book = EnergyBook()  # energy by source per session, with sun and storage
        self._booked_ts = 0
        self._pending: list[dict[str, Any]] = []

    # --- the command hook (agent.commands.router.SiteHook) -----------------------------------
    def manages(self, device: str) -> bool:
        return device in self.drivers

    async def command(self, device: str, action: Action, value: float | None, by: Writer) -> dict[str, Any]:
        now = self.clock.now_ms()
        if action is Action.SET_CURRENT_LIMIT:
            assert value is not None
            self.user_limit[device] = value
            cur = self.alloc.get(device)
            if cur is not None and cur > value:
                await self.gate.write(device, ChargerPoint.CURRENT_LIMIT, value, by=by)
                self.alloc[device] = value
            return {"user_limit": value, "applied": min(value, cur) if cur is not None else None}
        if action is Action.STOP:
            self.user_stopped.add(device)
            await self.gate.write(device, ChargerPoint.STOP, by=by)
            self.alloc[device] = 0.0
            return {}
        if action is Action.START:
            self.user_stopped.discard(device)
            await self.gate.write(device, ChargerPoint.START, by=by)
            return {}
        assert action is Action.BOOST and value is not None
        if value <= 0:
            self.boost_until.pop(device, None)
            return {"boost_until": None}
        self.boost_until[device] = now + int(value * 60_000)
        return {"boost_until": self.boost_until[device]}

    def set_session(self, device: str, *, departure_ms: int | None = None, energy_kwh: float | None = None,
                    car_max_a: float | None = None) -> None:
        """Tell the planner when the car on ``device`` leaves, what it needs and (if known) the most
        current it takes; this holds until the car is unplugged."""
        self.sessions.set(device, departure_ms=departure_ms, energy_kwh=energy_kwh, car_max_a=car_max_a)

    def plan_session(self, device: str, request: SessionRequest) -> dict[str, Any]:
        """The ``set_session`` command: a local "HH:MM" departure is the next such time from now."""
        dep = request.departure
        departure_ms = next_local_time(self.plan_tariff, dep, self.clock.now_ms()) if isinstance(dep, str) else dep
        if request.mode is not None and self.solar is None:
            raise Refusal(Code.NOT_WRITABLE, "a charging mode needs [site.solar] (PV and storage on the site)")
        self.set_session(device, departure_ms=departure_ms, energy_kwh=request.energy_kwh,
                         car_max_a=request.max_current_a)
        out = {"departure": departure_ms, "energy_kwh": request.energy_kwh, "max_current_a": request.max_current_a}
        if request.mode is not None and self.solar is not None:
            self.solar.set_mode(device, request.mode)  # until the car is unplugged
            out["mode"] = request.mode
        return out

    # --- one control step ---------------------------------------------------------------------
    def _value(self, device: str, metric: str) -> tuple[float, int]:
        try:
            sid = self.series.id(device, metric)
        except KeyError:
            return math.nan, 0
        v, ts, _ = self.latest.get(sid)
        return v, ts

    def _car_cap(self, n: str, state: IecState, prev: float) -> float:
        """A car drawing well below its offer gets capped near its draw, so others can have the rest;
        the cap is probed upwards while the car takes all it is given."""
        cfg = self.config
        cur, _ = self._value(n, ChargerMetric.CURRENT_L1)
        cap = self._car_caps.get(n, cfg.max_current)
        if state is IecState.C and not math.isnan(cur) and prev >= cfg.min_current:
            if cur < prev - 2:
                cap = max(cfg.min_current, math.ceil(cur) + 1)
            elif cur >= prev - 0.5 and prev >= cap:
                cap = cap + 2
        if cap >= cfg.max_current:
            self._car_caps.pop(n, None)
            return cfg.max_current
        self._car_caps[n] = cap
        return cap

    def meter_problem(self, now_ms: int) -> str | None:
        v, ts, q = self.latest.get(self._meter_sid)
        if ts == 0 or math.isnan(v):
            return "grid meter has no data"
        age = (now_ms - ts) / 1000
        if age > self.config.stale_after:
            return f"grid meter data is {age:.0f} s old"
        if q & Quality.STALE:
            return "grid meter data is flagged stale"
        return None

    def period(self, now_ms: int) -> str | None:
        return self.tariff.period_at(now_ms) if self.tariff is not None else None

    def targets(self, now_ms: int) -> tuple[dict[str, float], dict[str, Any]]:
        cfg = self.config
        info: dict[str, Any] = {}
        problem = self.meter_problem(now_ms)
        if problem is not None:
            info.update(mode="failsafe", reason=problem)
            safe = cfg.safe_current if cfg.safe_current >= cfg.min_current else 0.0
            return {n: (0.0 if n in self.user_stopped else safe) for n in self.drivers}, info
        grid_v, grid_ts, _ = self.latest.get(self._meter_sid)
        grid_w = grid_v * cfg.grid_meter.scale
        stale_ms = cfg.stale_after * 1000
        demands: list[Demand] = []
        reserved_w = 0.0
        charging_w = 0.0
        charging_a = [0.0, 0.0, 0.0]
        reserved_a = [0.0, 0.0, 0.0]
        out: dict[str, float] = {}
        drawn_by: dict[str, float] = {}
        for n in self.drivers:
            wpa = self._voltage * self._phases[n]
            prev = self.alloc.get(n, 0.0)
            raw_state, st_ts = self._value(n, ChargerMetric.STATE)
            state = IecState.of(raw_state)
            power, p_ts = self._value(n, ChargerMetric.POWER)
            # a stale gap marker (NaN, flagged STALE, stamped now) says the polls fail, not that the car left
            fresh = st_ts > 0 and now_ms - st_ts <= stale_ms and not math.isnan(raw_state)
            if not math.isnan(power) and now_ms - p_ts <= stale_ms:
                self.measure.observe(n, p_ts, power)
                drawn = self.measure.drawn_at_meter(n, grid_ts, power)  # at the moment the grid reading stands for
            else:
                drawn = prev * wpa
            charging_w += drawn
            drawn_by[n] = drawn
            for p in self._wired[n]:
                charging_a[p] += drawn / wpa
            if not fresh:  # unreachable: it may keep drawing what it had; reserve that, change nothing
                reserved_w += prev * wpa
                for p in self._wired[n]:
                    reserved_a[p] += prev
                out[n] = prev
                continue
            if not state.connected or n in self.user_stopped:
                self._since.pop(n, None)
                self._car_caps.pop(n, None)
                if not state.connected:
                    self.sessions.unplugged(n)
                    if self.solar is not None:
                        self.solar.modes.pop(n, None)
                        self.pv_switch.forget(n)
                    if (report := self.book.close(n)) is not None:
                        self._pending.append({"type": "site_session_energy", "ts": now_ms, "device": n, **report})
                out[n] = 0.0
                continue
            self._since.setdefault(n, now_ms)
            self.sessions.plugged(n, now_ms)
            cap = min(cfg.max_current, self.user_limit.get(n, cfg.max_current), self.gate.bounds(n)[1])
            cap = min(cap, self._car_cap(n, state, prev))
            boosted = self.boost_until.get(n, 0) > now_ms
            demands.append(Demand(n, wpa, cap, prev, boosted, self._since[n]))
        raw_base = grid_w - charging_w
        self._grid_ts = grid_ts
        self._drawn = drawn_by
        if self.solar is not None:  # the limit never counts on the sun or the battery (agent.site.solar)
            self.flows = self.solar.flows(grid_w, charging_w, now_ms)
            raw_base = self.flows.gross_w
            self._learn_pv()
            demands = self._modes(demands, drawn_by, now_ms)
            self._book(grid_ts, {d.name: drawn_by[d.name] for d in demands})  # sessions plugged in now
        base_w = self.measure.base(raw_base)
        budget_w = cfg.limit_w - cfg.margin_kw * 1000 - base_w - reserved_w
        phase_a = self._phase_headroom(base_w, charging_a, reserved_a, now_ms)
        period = self.period(now_ms)
        tou_cap = cfg.tou.cap_w(period) if period is not None else None
        if tou_cap is not None and self.solar is not None:  # the cap is on grid power: surplus PV comes on top
            tou_cap += self._surplus_w
        if cfg.planner.enabled:
            demands = self._planned(demands, budget_w, phase_a, now_ms, info)
            alloc = allocate_in_order(demands, budget_w=budget_w, min_a=cfg.min_current, ramp_a=cfg.ramp_up)
        else:
            alloc = allocate(demands, budget_w=budget_w, tou_cap_w=tou_cap, min_a=cfg.min_current, ramp_a=cfg.ramp_up)
        if phase_a is not None:
            alloc = fit_phases(alloc, demands, {d.name: self._wired[d.name] for d in demands}, phase_a,
                               min_a=cfg.min_current)
        # a charger told to take less may still draw its old power for a while: its room is not given away yet
        still = {n: self.measure.still_drawing(n, self._voltage * self._phases[n], now_ms) for n in self.drivers}
        names = {d.name for d in demands}
        elsewhere = sum(w for n, w in still.items() if n not in names) + self.measure.unseen_increase(grid_ts)
        alloc = hold_back(alloc, demands, budget_w=budget_w - elsewhere, still_w=still, min_a=cfg.min_current)
        out.update(alloc)
        info.update(mode="normal", period=period, grid_w=round(grid_w, 1), base_w=round(base_w, 1),
                    budget_w=round(budget_w, 1))
        return out, info

    def _phase_headroom(self, base_w: float, charging_a: list[float], reserved_a: list[float],
                        now_ms: int) -> tuple[float, float, float] | None:
        """Amps per phase chargers may use, for sites limited per phase (``limit_a``)."""
        cfg = self.config
        if cfg.limit_a is None:
            return None
        margin_a = cfg.margin_kw * 1000 / (cfg.voltage * cfg.phases)
        base = [base_w / (cfg.voltage * cfg.phases)] * 3
        if cfg.phase_currents is not None:
            read = [self._value(cfg.grid_meter.device, m) for m in cfg.phase_currents]
            if all(ts > 0 and now_ms - ts <= cfg.stale_after * 1000 and not math.isnan(v) for v, ts in read):
                base = [v - charging_a[p] for p, (v, _) in enumerate(read)]
        head = [cfg.limit_a - margin_a - base[p] - reserved_a[p] for p in range(3)]
        return (head[0], head[1], head[2])

    def _ramped(self, s, prev_a: float, now_ms: int):
        """Add the energy a ramp-limited start loses against full current, so the plan starts early enough."""
        ramp = self.config.ramp_up
        step_s = (now_ms - self._last_plan_ms) / 1000 if 0 < now_ms - self._last_plan_ms < 600_000 else 60.0
        if ramp is None or s.max_a <= prev_a:
            return s
        lost_wh = (s.max_a - prev_a) ** 2 / (2 * ramp / step_s) * s.watts_per_amp / 3600
        return replace(s, need_wh=s.need_wh + lost_wh) if s.need_wh > 1 else s

    def _planned(self, demands: list[Demand], budget_w: float, phase_a, now_ms: int,
                 info: dict[str, Any]) -> list[Demand]:
        """Cap every demand at what the departure-aware plan gives it now; boosted ones keep their cap."""
        cfg = self.config
        pc = cfg.planner
        planned = [d for d in demands if not d.boosted and d.name not in self._pv_only]  # PV-only: the sun alone
        sessions = [self.sessions.session(d.name, self._value(d.name, ChargerMetric.SESSION_ENERGY)[0], d.cap_a,
                                          self._wired[d.name], self._voltage, now_ms) for d in planned]
        if self._pv_caps:  # min+PV: the grid covers what the forecast sun will not, by departure
            sun = self._expected_pv_wh(planned, {x.name: x.departure_ms for x in sessions}, now_ms)
            sessions = [replace(x, need_wh=max(0.0, x.need_wh - sun.get(x.name, 0.0))) for x in sessions]
            info["pv_forecast_wh"] = {n: round(w) for n, w in sun.items()}
        sessions = [self._ramped(x, d.prev_a, now_ms) for x, d in zip(sessions, planned, strict=True)]
        step_s = (now_ms - self._last_plan_ms) / 1000 if 0 < now_ms - self._last_plan_ms < 600_000 else 60.0
        self._last_plan_ms = now_ms
        co2 = self.carbon.factors_at if self.carbon is not None else None
        p = plan(sessions, now_ms, Headroom(budget_w, phase_a), price=self.plan_tariff.prices_at, carbon=co2,
                 slot_ms=pc.slot_minutes * 60_000, horizon_ms=int(pc.horizon_hours * 3_600_000), later=pc.headroom)
        self.last_plan = p
        info["plan"] = p.method
        info["shortfall_wh"] = {n: round(w) for n, w in p.shortfall_wh.items()}
        out = []
        urgency = {x.name: x.departure_ms for x in sessions}
        # feasible sessions first, most urgent first; a car that cannot be served in time gets what is left
        for d in sorted(demands, key=lambda d: (d.name in p.infeasible, urgency.get(d.name, 0), d.since, d.name)):
            if d.boosted or d.name in self._pv_only:
                out.append(d)
                continue
            # deliver this slot's planned energy as early as the slot allows: slack for what the plan cannot see
            a = p.now_a(d.name) * max(1.0, float(p.seconds[0]) / step_s) if p.seconds.size else 0.0
            if 0 < a < cfg.min_current:
                a = cfg.min_current
            a = math.ceil(a * 10 - 1e-6) / 10
            out.append(replace(d, cap_a=min(d.cap_a, max(a, self._pv_caps.get(d.name, 0.0)))))
        return out

    async def step(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        now_ms = self.clock.now_ms() if now_ms is None else now_ms
        for n, until in list(self.boost_until.items()):
            if until <= now_ms:
                del self.boost_until[n]
        targets, info = self.targets(now_ms)
        events, self._pending = self._pending, []
        failsafe = info["mode"] == "failsafe"
        if failsafe != self.failsafe:
            self.failsafe = failsafe
            events.append({"type": "site_failsafe" if failsafe else "site_recovered", "ts": now_ms,
                           "reason": info.get("reason", "grid meter data is fresh again")})
        changed = {n: a for n, a in targets.items() if self.alloc.get(n) != a}
        for n, a in changed.items():
            prev = self.alloc.get(n, 0.0)
            try:
                await self.gate.write(n, ChargerPoint.CURRENT_LIMIT, a, by=SITE)
                self.alloc[n] = a  # what was decided; the gate may have clamped it to the declared bounds
                wpa = self._voltage * self._phases[n]
                if a < prev:
                    self.measure.lowered(n, prev * wpa, a * wpa, now_ms)
                else:
                    self.measure.raised(n, (a - prev) * wpa, now_ms)
            except Exception as e:  # noqa: BLE001 - one charger failing must not stop the others
                events.append({"type": "site_write_failed", "ts": now_ms, "device": n, "reason": f"{type(e).__name__}: {e}"})
        if self.solar is not None and "budget_w" in info:
            events += await self._solar_step(now_ms, info["budget_w"])
        elif self.solar is not None and self.flows is not None:  # grid meter stale: hold the battery
            self.flows = replace(self.flows, fresh=False, reason=info.get("reason", ""))
            events += await self._solar_step(now_ms, 0.0)
        events += self.sessions.shortfall_events(info.get("shortfall_wh", {}), now_ms)
        if changed:
            events.append({"type": "site_allocation", "ts": now_ms, **info,
                           "allocations": {n: self.alloc.get(n, 0.0) for n in self.drivers}})
        return events

