"""A physical model of one charging connector and the car plugged into it (for simulators and benches).

The car charges at min(offered current, car maximum) on its phases until it has taken the energy it
wanted, then it stops drawing (state B) and waits to be unplugged. With ``ramp_up_a_s`` /
``ramp_down_a_s`` the car follows a new offer at that many A per second, as real cars do (IEC 61851
gives them up to 5 s), instead of at once. If the charger needs a heartbeat
and it lapses, the offered current falls back to the fail-safe current, as real controllers do.
Time is passed in explicitly (seconds, any monotonic origin), so the model runs at any speed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .model import IecState


@dataclass(slots=True)
class Car:
    need_wh: float
    max_a: float = 32.0
    phases: int = 3
    id_tag: str = "CAR"


class EvseModel:
    def __init__(
        self,
        *,
        voltage: float = 230.0,
        max_a: float = 32.0,
        failsafe_a: float = 6.0,
        heartbeat_timeout_s: float | None = None,
        total_wh: float = 0.0,
        now: float = 0.0,
        ramp_up_a_s: float | None = None,
        ramp_down_a_s: float | None = None,
    ):
        self.voltage = voltage
        self.max_a = max_a
        self.failsafe_a = failsafe_a
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.enabled = True
        self.limit_a = max_a
        self.car: Car | None = None
        self.session_wh = 0.0
        self.total_wh = total_wh
        self.fault = False
        self._last = now
        self._last_heartbeat = now
        self.sessions_finished = 0
        self.ramp_up_a_s = ramp_up_a_s
        self.ramp_down_a_s = ramp_down_a_s
        self._from_a = 0.0  # the current drawn when the offer last changed, and when
        self._from_t = now

    def _mark(self, now: float) -> None:
        """Before an input changes: remember what the car draws now, the start of its ramp to the new offer."""
        self._from_a = self.current_a(now)
        self._from_t = now

    # --- inputs -------------------------------------------------------------------------------
    def plug(self, car: Car, now: float) -> None:
        self.advance(now)
        self._mark(now)
        self.car = car
        self.session_wh = 0.0

    def unplug(self, now: float) -> None:
        self.advance(now)
        self._mark(now)
        if self.car is not None:
            self.sessions_finished += 1
        self.car = None

    def heartbeat(self, now: float) -> None:
        self._mark(now)
        self._last_heartbeat = now

    def set_limit(self, amps: float, now: float) -> None:
        self.advance(now)
        self._mark(now)
        self.limit_a = max(0.0, min(float(amps), self.max_a))
        self._last_heartbeat = now

    def set_enabled(self, on: bool, now: float) -> None:
        self.advance(now)
        self._mark(now)
        self.enabled = bool(on)
        self._last_heartbeat = now

    # --- derived ------------------------------------------------------------------------------
    def failsafe_active(self, now: float) -> bool:
        return self.heartbeat_timeout_s is not None and now - self._last_heartbeat > self.heartbeat_timeout_s

    def offered_a(self, now: float) -> float:
        """Current the EVSE offers (PWM); 0 when disabled or below the IEC 61851 minimum."""
        if not self.enabled or self.fault:
            return 0.0
        limit = self.limit_a
        if self.failsafe_active(now):
            limit = min(limit, self.failsafe_a)
        return limit if limit >= 6.0 else 0.0

    def wants_charge(self) -> bool:
        return self.car is not None and self.session_wh < self.car.need_wh

    def current_a(self, now: float) -> float:
        if not self.wants_charge():
            return 0.0
        assert self.car is not None
        target = min(self.offered_a(now), self.car.max_a)
        dt = max(0.0, now - self._from_t)
        if target > self._from_a and self.ramp_up_a_s is not None:
            return min(target, self._from_a + self.ramp_up_a_s * dt)
        if target < self._from_a and self.ramp_down_a_s is not None:
            return max(target, self._from_a - self.ramp_down_a_s * dt)
        return target

    def phases(self) -> int:
        return self.car.phases if self.car is not None else 3

    def power_w(self, now: float) -> float:
        return self.current_a(now) * self.voltage * self.phases()

    def state(self, now: float) -> IecState:
        if self.fault:
            return IecState.F
        if self.car is None:
            return IecState.A
        return IecState.C if self.current_a(now) > 0 else IecState.B

    def advance(self, now: float) -> None:
        """Integrate energy from the last call to ``now`` (the state held constant meanwhile)."""
        dt = now - self._last
        if dt <= 0:
            return
        # the heartbeat may have lapsed inside the interval: split there
        if self.heartbeat_timeout_s is not None:
            lapse = self._last_heartbeat + self.heartbeat_timeout_s
            if self._last < lapse < now:
                self.advance(lapse)
                dt = now - self._last
        p = self.power_w(self._last)
        if p > 0 and self.car is not None:
            wh = min(p * dt / 3600.0, self.car.need_wh - self.session_wh)
            self.session_wh += wh
            self.total_wh += wh
        self._last = now


class Arrivals:
    """Cars arriving at one connector at random, charging, staying a while, then leaving."""

    def __init__(self, *, seed: int = 1, mean_gap_s: float = 600.0, mean_need_wh: float = 8000.0,
                 dwell_after_s: float = 120.0):
        self.rng = random.Random(seed)
        self.mean_gap_s = mean_gap_s
        self.mean_need_wh = mean_need_wh
        self.dwell_after_s = dwell_after_s
        self._next: float | None = None
        self._done_at: float | None = None
        self._n = 0

    def step(self, evse: EvseModel, now: float) -> None:
        evse.advance(now)
        if self._next is None:
            self._next = now + self.rng.expovariate(1 / self.mean_gap_s) * 0.2
        if evse.car is None:
            if now >= self._next:
                self._n += 1
                need = max(500.0, self.rng.gauss(self.mean_need_wh, self.mean_need_wh / 3))
                car = Car(need_wh=need, max_a=self.rng.choice([16.0, 16.0, 32.0]),
                          phases=self.rng.choice([3, 3, 1]), id_tag=f"CAR{self._n:04d}")
                evse.plug(car, now)
                self._done_at = None
            return
        if not evse.wants_charge():
            if self._done_at is None:
                self._done_at = now
            elif now - self._done_at >= self.dwell_after_s:
                evse.unplug(now)
                self._next = now + self.rng.expovariate(1 / self.mean_gap_s)
