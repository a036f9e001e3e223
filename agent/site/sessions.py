"""What the site knows about each charging session: when it started, when the car leaves, what it needs.

Sources, best first: an override (``SiteController.set_session``, e.g. from a fleet system: "leaves at
14:30 with 40 kWh"), the charger's defaults in ``[site.planner.chargers]``, the fleet default.
A departure given as a local time (in ``processing.timezone``, the tariff's zone) is the next such time
after plug-in.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from agent.contract import Clock
from agent.processing.tariff import Tariff

from .planner import Session

if TYPE_CHECKING:
    from .config import SiteConfig

REPORT_STEP_WH = 500.0  # report a shortfall again only when it grew by this much


def next_local_time(tariff: Tariff, hhmm: str, after_ms: int) -> int:
    """The first moment after ``after_ms`` that is ``hhmm`` ("HH:MM") local time in the tariff's zone."""
    h, m = (int(x) for x in hhmm.split(":"))
    t = tariff.local_day_start(after_ms) + (h * 60 + m) * 60_000
    return t if t > after_ms else t + 86_400_000


class SessionBook:
    def __init__(self, config: SiteConfig, clock: Clock, tariff: Tariff):
        self.config = config
        self.clock = clock
        self.tariff = tariff
        self.plugged_at: dict[str, int] = {}
        self.overrides: dict[str, tuple[int | None, float | None]] = {}
        self.car_max_a: dict[str, float] = {}
        self._reported: dict[str, float] = {}

    def plugged(self, name: str, now_ms: int) -> None:
        self.plugged_at.setdefault(name, now_ms)

    def unplugged(self, name: str) -> None:
        self.plugged_at.pop(name, None)
        self.overrides.pop(name, None)
        self.car_max_a.pop(name, None)
        self._reported.pop(name, None)

    def set(self, name: str, *, departure_ms: int | None = None, energy_kwh: float | None = None,
            car_max_a: float | None = None) -> None:
        """Override this session's departure and/or energy (until the car is unplugged)."""
        self.overrides[name] = (departure_ms, energy_kwh)
        if car_max_a is not None:
            self.car_max_a[name] = car_max_a
        self._reported.pop(name, None)

    def _defaults(self, name: str) -> tuple[str | None, float | None, float | None]:
        pc = self.config.planner
        own = pc.chargers.get(name)  # none: SessionDefaults(), every field unset
        o_dep, o_dwell, o_kwh = (own.departure, own.dwell_hours, own.energy_kwh) if own is not None else (None, None, None)
        dep = o_dep if o_dep or o_dwell else pc.default.departure
        dwell = o_dwell if o_dep or o_dwell else pc.default.dwell_hours
        return dep, dwell, o_kwh if o_kwh is not None else pc.default.energy_kwh

    def departure_ms(self, name: str, now_ms: int) -> int:
        over = self.overrides.get(name, (None, None))[0]
        if over is not None:
            return over
        start = self.plugged_at.get(name, now_ms)
        dep, dwell, _ = self._defaults(name)
        if dep is not None:
            return next_local_time(self.tariff, dep, start)
        return start + int((dwell or 8.0) * 3_600_000)

    def need_kwh(self, name: str) -> float:
        over = self.overrides.get(name, (None, None))[1]
        return over if over is not None else (self._defaults(name)[2] or 0.0)

    def session(self, name: str, delivered_kwh: float, cap_a: float, phases: tuple[int, ...], voltage: float,
                now_ms: int) -> Session:
        done = 0.0 if math.isnan(delivered_kwh) else delivered_kwh
        early = int(self.config.planner.finish_early_minutes * 60_000)
        rate = min(cap_a, self.car_max_a.get(name, cap_a))
        return Session(name, max(0.0, self.need_kwh(name) - done) * 1000, self.departure_ms(name, now_ms),
                       rate, phases, voltage, self.plugged_at.get(name, now_ms), early)

    def shortfall_events(self, shortfall_wh: dict[str, float], now_ms: int) -> list[dict[str, Any]]:
        """A ``site_shortfall`` event when a session first cannot get its energy in time, or falls further behind."""
        out = []
        for n, wh in shortfall_wh.items():
            if wh < self._reported.get(n, 0.0) + REPORT_STEP_WH:
                continue
            self._reported[n] = wh
            out.append({"type": "site_shortfall", "ts": now_ms, "device": n, "shortfall_kwh": round(wh / 1000, 2),
                        "need_kwh": round(self.need_kwh(n), 2), "departure": self.departure_ms(n, now_ms)})
        return out
