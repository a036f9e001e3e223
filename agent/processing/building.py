"""Building energy checks on a meter's hourly energy: base load out of hours and a shifted schedule.

Each meter keeps a profile of its own days in local time: the EW mean kWh of each hour for workdays
and for weekends (2 x 24 numbers, plus day counts; fixed memory). From the workday profile it knows
its occupied hours (above the midpoint between its base load, the lowest hours, and its occupied
load, the highest) and its base load. When a local day has closed (its hours published), the day is
checked against it:

- **base load** (``energy_base_load``): the kWh of the out-of-hours hours (nights of workdays, whole
  weekend days) against what the profile expects for them. Reported when the excess is at least
  ``BASE_EXCESS`` of the expected kWh and, per hour, at least ``SWING_SHARE`` of the building's swing
  (occupied minus base load): ventilation left running all night, a weekend that looks like a workday.
- **schedule shift** (``energy_schedule_shift``): the first and last occupied hour of a workday against
  the profile's; a start or an end at least ``SHIFT_H`` hours away (a timer that lost its setting, a
  schedule moved by a clock change).

Each event carries its evidence: the period (``start``/``end``, epoch ms), ``expected_kwh`` and
``seen_kwh`` over it. A day with fewer than ``MIN_HOURS`` published hours is not checked; a day that
raised an event does not teach the profile. Checks start after ``MIN_DAYS`` days of a day type.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

MS_HOUR = 3_600_000
MIN_DAYS = 5  # workdays learnt before any check (weekends: their own profile once it has MIN_WEEKENDS)
MIN_WEEKENDS = 2
MIN_HOURS = 22  # published hours a day needs to be checked
DAY_ALPHA = 0.2  # the profile follows each clean day at this rate (a few weeks' memory)
BASE_EXCESS = 0.3  # out-of-hours kWh this fraction above expected ...
SWING_SHARE = 0.15  # ... and per hour at least this share of occupied minus base load
SHIFT_H = 2  # a start or end of occupancy this many hours away from the profile's


@dataclass(slots=True)
class _Meter:
    profile: np.ndarray = field(default_factory=lambda: np.zeros((2, 24)))  # [weekend][local hour] kWh
    days: np.ndarray = field(default_factory=lambda: np.zeros(2))
    day: dt.date | None = None  # the local day being collected
    hours: np.ndarray = field(default_factory=lambda: np.full(24, np.nan))
    starts: np.ndarray = field(default_factory=lambda: np.zeros(24, np.int64))  # each hour's start (epoch ms)


def _occupied(profile: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Occupied hours of a workday profile, its base load and its occupied load (kWh per hour)."""
    srt = np.sort(profile)
    base, occ = float(srt[:6].mean()), float(srt[-6:].mean())
    return profile > (base + occ) / 2, base, occ


class BuildingChecks:
    def __init__(self, zone: str, meters: list[str]):
        self.zone = ZoneInfo(zone)
        self.meters = {m: _Meter() for m in meters}

    def hour(self, device: str, body: dict) -> list[dict]:
        """Take a published hourly energy body (supplements add to their hour); events of a day that closed."""
        m = self.meters.get(device)
        if m is None or body.get("window") != "1h":
            return []
        start = int(body["start"])
        local = dt.datetime.fromtimestamp(start / 1000, self.zone)
        out: list[dict] = []
        if m.day is not None and local.date() > m.day:
            out = self._close(device, m)
        if m.day is None or local.date() > m.day:
            m.day, m.hours[:] = local.date(), np.nan
        if local.date() == m.day:
            h = local.hour
            m.hours[h] = (0.0 if np.isnan(m.hours[h]) else m.hours[h]) + float(body["kwh"])
            m.starts[h] = start
        return out

    def _close(self, device: str, m: _Meter) -> list[dict]:
        day, hours = m.day, m.hours.copy()
        assert day is not None
        seen = ~np.isnan(hours)
        if seen.sum() < MIN_HOURS:
            return []
        weekend = int(day.weekday() >= 5)
        events: list[dict] = []
        if m.days[0] >= MIN_DAYS:
            occ_mask, base, occ = _occupied(m.profile[0])
            swing = occ - base
            if swing > 0:
                shift = [] if weekend else self._shift(device, m, hours, seen, occ_mask, base, occ)
                explained = np.zeros(24, bool)  # hours of a shifted occupied block are the shift's, not base load
                if shift:
                    explained[shift[0]["seen_hours"][0]:shift[0]["seen_hours"][1]] = True
                events += self._base_load(device, m, hours, seen & ~explained, weekend, occ_mask, swing) + shift
        if not events:  # a day that raised a finding does not teach
            filled = np.where(seen, hours, m.profile[weekend])
            a = max(1.0 / (m.days[weekend] + 1.0), DAY_ALPHA)
            m.profile[weekend] = filled if m.days[weekend] == 0 else m.profile[weekend] + a * (filled - m.profile[weekend])
            m.days[weekend] += 1
        return events

    def _base_load(self, device, m, hours, seen, weekend, occ_mask, swing) -> list[dict]:
        out_of_hours = seen & (np.ones(24, bool) if weekend else ~occ_mask)
        if weekend and m.days[1] >= MIN_WEEKENDS:
            expected_h = m.profile[1]
        else:
            expected_h = np.where(occ_mask, np.nan, m.profile[0])
            expected_h = np.where(np.isnan(expected_h), np.nanmean(expected_h), expected_h)
        # the longest out-of-hours stretch of excess (nights run 00-08 and 18-24 of one local day)
        excess_h = (hours - expected_h > SWING_SHARE * swing) & out_of_hours
        if excess_h.sum() < 2:
            return []
        idx = np.flatnonzero(excess_h)
        expected, seen_kwh = float(expected_h[idx].sum()), float(hours[idx].sum())
        if seen_kwh - expected < BASE_EXCESS * expected:
            return []
        return [{"v": 1, "kind": "energy_base_load", "device": device, "ts": int(m.starts[idx[-1]]) + MS_HOUR,
                 "start": int(m.starts[idx[0]]), "end": int(m.starts[idx[-1]]) + MS_HOUR, "hours": int(idx.size),
                 "day_type": "weekend" if weekend else "workday", "expected_kwh": round(expected, 3),
                 "seen_kwh": round(seen_kwh, 3), "excess_kwh": round(seen_kwh - expected, 3)}]

    def _shift(self, device, m, hours, seen, occ_mask, base, occ) -> list[dict]:
        if not occ_mask.any():
            return []
        today = seen & (hours > (base + occ) / 2)
        if not today.any():
            return []
        exp = np.flatnonzero(occ_mask)
        got = np.flatnonzero(today)
        d_start, d_end = int(got[0] - exp[0]), int(got[-1] - exp[-1])
        if abs(d_start) < SHIFT_H and abs(d_end) < SHIFT_H:
            return []
        changed = seen & (occ_mask != today)  # hours occupied in one and not the other
        idx = np.flatnonzero(changed)
        lo, hi = int(idx[0]), int(idx[-1])
        span = np.arange(lo, hi + 1)
        span = span[seen[span]]
        return [{"v": 1, "kind": "energy_schedule_shift", "device": device, "ts": int(m.starts[hi]) + MS_HOUR,
                 "start": int(m.starts[lo]), "end": int(m.starts[hi]) + MS_HOUR,
                 "expected_hours": [int(exp[0]), int(exp[-1]) + 1], "seen_hours": [int(got[0]), int(got[-1]) + 1],
                 "shift_start_h": d_start, "shift_end_h": d_end,
                 "expected_kwh": round(float(m.profile[0][span].sum()), 3), "seen_kwh": round(float(hours[span].sum()), 3)}]
