"""Base load from readings taken at different moments, and what the chargers may still draw.

The grid meter and the chargers are polled at different moments, and a meter's value trails its
timestamp (it integrates, then updates). Subtracting the chargers' latest power from the grid reading
mixes two instants: while cars ramp up the chargers' readings are ahead of the meter's, the base load
comes out too low (even negative) and the budget too large. So:

* each charger's power is taken *at the meter's instant* (grid timestamp − ``meter_lag``),
  interpolated between its own readings;
* the base load is never below 0 (nor above the limit);
* a charger told to take less counts at its old power until one of its readings, taken after the
  write, shows it has followed (a car may take seconds to ramp down): the room it frees is not given
  to others before then;
* an increase is kept in reserve until a grid reading taken ``meter_lag`` + ``car_ramp`` seconds
  after it has come in (the car has ramped and the meter shows it): until then the base estimate may
  be missing it (too low by up to that increase), so no other increase may use that room. Judged by the grid reading's own timestamp,
  this holds however late polls and steps run on a busy gateway.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

HISTORY_MS = 30_000
CONFIRM_TOLERANCE_A = 1.0  # a reading this close to the new limit counts as followed
DECREASE_TIMEOUT_MS = 10_000  # a car follows a lower limit within 5 s (IEC 61851); after this, trust the limit


class Readings:
    """Timestamped power readings of one charger (W)."""

    def __init__(self) -> None:
        self.ts: deque[int] = deque()
        self.w: deque[float] = deque()

    def add(self, ts: int, w: float) -> None:
        if ts <= 0 or math.isnan(w) or (self.ts and ts <= self.ts[-1]):
            return
        self.ts.append(ts)
        self.w.append(w)
        while self.ts and self.ts[0] < ts - HISTORY_MS:
            self.ts.popleft()
            self.w.popleft()

    def at(self, t_ms: int) -> float | None:
        """Power at ``t_ms``, interpolated between the readings around it (the nearest one at the ends)."""
        if not self.ts:
            return None
        ts = list(self.ts)
        i = bisect.bisect_right(ts, t_ms)
        if i == 0:
            return self.w[0]
        if i == len(ts):
            return self.w[-1]
        t0, t1, w0, w1 = ts[i - 1], ts[i], self.w[i - 1], self.w[i]
        return w0 + (w1 - w0) * (t_ms - t0) / (t1 - t0)

    def latest_after(self, t_ms: int) -> float | None:
        return self.w[-1] if self.ts and self.ts[-1] > t_ms else None


class BaseEstimator:
    def __init__(self, *, meter_lag_s: float, car_ramp_s: float, limit_w: float):
        self.lag_ms = int(meter_lag_s * 1000)
        self.ramp_ms = int(car_ramp_s * 1000)
        self.limit_w = limit_w
        self.readings: dict[str, Readings] = {}
        self._lowering: dict[str, tuple[float, float, int]] = {}  # charger -> (old W, new W, write time)
        self._raised: deque[tuple[int, float]] = deque()  # (write time, W added)

    def observe(self, name: str, ts: int, w: float) -> None:
        self.readings.setdefault(name, Readings()).add(ts, w)

    def drawn_at_meter(self, name: str, grid_ts: int, fallback_w: float) -> float:
        """What ``name`` drew at the moment the grid reading stands for."""
        r = self.readings.get(name)
        w = r.at(grid_ts - self.lag_ms) if r is not None else None
        return fallback_w if w is None else w

    def base(self, raw_w: float) -> float:
        """The raw estimate clamped to [0, limit]: an export or a timing error never enlarges the budget."""
        return min(max(raw_w, 0.0), self.limit_w)

    # --- decreases not yet followed -------------------------------------------------------------
    def lowered(self, name: str, old_w: float, new_w: float, now_ms: int) -> None:
        prev = self._lowering.get(name)
        self._lowering[name] = (max(old_w, prev[0]) if prev else old_w, new_w, now_ms)

    def raised(self, name: str, added_w: float, now_ms: int) -> None:
        self._lowering.pop(name, None)
        self._raised.append((now_ms, added_w))

    def unseen_increase(self, grid_ts: int) -> float:
        """W added by increases that the grid reading of ``grid_ts`` may not show yet."""
        settle = self.lag_ms + self.ramp_ms
        while self._raised and grid_ts >= self._raised[0][0] + settle:
            self._raised.popleft()
        return sum(w for _, w in self._raised)

    def still_drawing(self, name: str, watts_per_amp: float, now_ms: int) -> float:
        """The most ``name`` may still draw from a limit it has not yet been seen to follow (0 if none)."""
        entry = self._lowering.get(name)
        if entry is None:
            return 0.0
        old_w, new_w, at = entry
        r = self.readings.get(name)
        seen = r.latest_after(at) if r is not None else None
        if now_ms - at > DECREASE_TIMEOUT_MS or (seen is not None and seen <= new_w + CONFIRM_TOLERANCE_A * watts_per_amp):
            del self._lowering[name]
            return 0.0
        return old_w if seen is None else min(old_w, max(seen, new_w))
