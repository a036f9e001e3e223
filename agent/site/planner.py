"""Departure-aware charging plans: every session gets its energy before it leaves, as cheaply as possible.

A plan splits the time from now to the last departure into slots (the first one ends at the next slot
boundary, the others are ``slot_ms`` long) and gives every session a current per slot. Constraints,
the same in every slot: a power budget (W) and, for sites limited per phase, a current budget per
phase that only the phases a car charges on count against (a single-phase car loads one phase).

Two fills, the better one wins:

* cost first: sessions in order of departure (then least slack) take their cheapest slots first
  (price, then carbon, then the earlier slot), each up to its current cap and the slot's headroom;
* least laxity first: slot by slot from now, the session with the least time to spare charges first.

The cost fill is chosen unless it leaves more energy undelivered than the laxity fill. Whatever neither
fill can deliver before a departure is that session's shortfall, reported at once by the controller.

A session whose car cannot take its need before it leaves even with the whole site to itself is
infeasible: it is planned last, with what the feasible sessions leave (charging by urgency), so one
car that cannot be served never starves cars that can; its shortfall is known, and reported, at once.
When the site cannot serve all the others either, the ones the plan leaves short join the infeasible
ones and the rest is planned again (an overload otherwise spreads shortfalls like dominoes).
Pure functions over plain data: the controller replans every step with the live meter headroom.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

EPS_WH = 1.0  # shortfalls below 1 Wh are rounding


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    need_wh: float  # energy still wanted
    departure_ms: int
    max_a: float  # most current per phase it may get
    phases: tuple[int, ...] = (0, 1, 2)  # site phases it loads (0 = L1)
    voltage: float = 230.0
    since: int = 0  # plug-in time: earlier wins ties
    early_ms: int = 0  # plan to be done this long before departure (slack for what the plan cannot see)

    @property
    def watts_per_amp(self) -> float:
        return self.voltage * len(self.phases)


@dataclass(frozen=True, slots=True)
class Headroom:
    """What charging may use in each slot: watts in total and, if the site is limited per phase, amps per phase."""

    power_w: float
    phase_a: tuple[float, float, float] | None = None


@dataclass
class Plan:
    starts_ms: np.ndarray  # slot starts
    seconds: np.ndarray  # slot lengths
    amps: dict[str, np.ndarray]  # per session, per slot
    shortfall_wh: dict[str, float]
    method: str  # "cost" or "laxity"
    cost: float = 0.0
    infeasible: frozenset[str] = frozenset()  # sessions that cannot get their need even alone; planned last

    def now_a(self, name: str) -> float:
        a = self.amps.get(name)
        return float(a[0]) if a is not None and a.size else 0.0


def slots(now_ms: int, end_ms: int, slot_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot starts and lengths (s) from ``now_ms`` to ``end_ms``; boundaries at multiples of ``slot_ms``."""
    first = (now_ms // slot_ms + 1) * slot_ms
    bounds = np.concatenate(([now_ms], np.arange(first, max(end_ms, first), slot_ms, dtype=np.int64)))
    if bounds[-1] < end_ms:
        bounds = np.append(bounds, end_ms)
    if bounds.size < 2:
        bounds = np.array([now_ms, first], np.int64)
    return bounds[:-1].astype(np.int64), np.diff(bounds).astype(np.float64) / 1000.0


def plan(
    sessions: Sequence[Session],
    now_ms: int,
    headroom: Headroom,
    *,
    price: Callable[[np.ndarray], np.ndarray],
    carbon: Callable[[np.ndarray], np.ndarray] | None = None,
    slot_ms: int = 900_000,
    horizon_ms: int = 86_400_000,
    later: float = 1.0,
) -> Plan:
    """Plan every session's current per slot under ``headroom`` (slots after the first get ``later`` x it)."""
    first_end = (now_ms // slot_ms + 1) * slot_ms
    # a car past its (planned) departure that is still here and still wants energy gets what the first slot can give
    wanted = [s for s in sessions if s.need_wh > EPS_WH and s.max_a > 0]
    real = [replace(s, departure_ms=s.departure_ms if s.departure_ms > now_ms else first_end, early_ms=0)
            for s in wanted]
    live = [replace(s, departure_ms=s.departure_ms - s.early_ms if s.departure_ms - s.early_ms > now_ms
                    else r.departure_ms) for s, r in zip(wanted, real, strict=True)]
    end = max([s.departure_ms for s in real], default=now_ms + slot_ms)
    starts, secs = slots(now_ms, min(end, now_ms + horizon_ms), slot_ms)
    n, k = len(live), starts.size
    ends = starts + (secs * 1000).astype(np.int64)
    # hours each session can charge in each slot (0 after its departure)
    hours = np.zeros((n, k))
    hours_real = np.zeros((n, k))
    for i, s in enumerate(live):
        hours[i] = np.clip((s.departure_ms - starts) / 1000.0, 0.0, secs) / 3600.0
        hours_real[i] = np.clip((real[i].departure_ms - starts) / 1000.0, 0.0, secs) / 3600.0
    coef, cap1 = _constraints(live, headroom)
    cap = np.tile(cap1 * later, (k, 1))
    cap[0] = cap1
    prices = np.asarray(price(starts), np.float64)
    co2 = np.asarray(carbon(starts), np.float64) if carbon is not None else np.zeros(k)
    by_cost = np.lexsort((starts, co2, prices))  # cheapest, then cleanest, then earliest
    wpa = np.array([s.watts_per_amp for s in live])
    # a car that cannot take its need before it leaves, even alone, waits for what the others leave
    alone = np.array([s.max_a for s in live]) * wpa * hours_real.sum(axis=1) if n else np.zeros(0)
    bad = [i for i, s in enumerate(live) if s.need_wh > alone[i] + EPS_WH]
    amps = np.zeros((n, k))
    short = np.zeros(n)
    use_cost = True
    # then, while the site cannot serve every remaining session in time, the ones it would leave short
    # join them: serving those first would only make more cars leave short (the domino of an overload)
    while True:
        good = [i for i in range(n) if i not in set(bad)]
        if not good:
            break
        g_amps, g_short, use_cost = _fill_best([live[i] for i in good], [real[i] for i in good], hours[good],
                                               hours_real[good], coef[:, good], cap, by_cost, starts, ends)
        amps[good], short[good] = g_amps, g_short
        late = [good[j] for j in np.flatnonzero(g_short > EPS_WH)]
        if not late or len(late) == len(good):
            break
        bad += late
    hours_used = hours.copy()
    bad = sorted(set(bad))
    if bad:
        amps[bad] = 0.0
        left = np.maximum(0.0, cap - (coef @ amps).T)  # per slot, per constraint: what the feasible ones leave
        b_real, b_hours = [real[i] for i in bad], hours_real[bad]
        amps[bad] = _fill_laxity(b_real, b_hours, coef[:, bad], left, starts, ends)
        short[bad] = _shortfall(b_real, b_hours, amps[bad])
        hours_used[bad] = b_hours
    wh = amps * wpa[:, None] * hours_used
    out = Plan(starts, secs, {s.name: amps[i] for i, s in enumerate(live)},
               {s.name: float(short[i]) for i, s in enumerate(live) if short[i] > EPS_WH},
               "cost" if use_cost else "laxity", float((wh.sum(axis=0) / 1000 * prices).sum()),
               frozenset(live[i].name for i in bad))
    for s in sessions:
        out.amps.setdefault(s.name, np.zeros(k))
    return out


def _fill_best(live, real, hours, hours_real, coef, cap, by_cost, starts, ends):
    """The better of the two fills (amps, shortfall by the real departure charging by urgency, cost fill?)."""
    cost_a = _fill_cost(live, hours, coef, cap, by_cost)
    lax_a = _fill_laxity(live, hours, coef, cap, starts, ends)
    short_lax = _shortfall(live, hours, lax_a)
    use_cost = _shortfall(live, hours, cost_a).sum() <= short_lax.sum() + EPS_WH
    # what cannot be delivered even by the real departure, charging by urgency
    short = short_lax if not (short_lax > EPS_WH).any() else _shortfall(live, hours_real, _fill_laxity(
        real, hours_real, coef, cap, starts, ends))
    return (cost_a if use_cost else lax_a), short, use_cost


def _constraints(live: Sequence[Session], h: Headroom) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (constraint x session, per amp) and capacities: power first, then the phases."""
    rows = [[s.watts_per_amp for s in live]]
    caps = [max(0.0, h.power_w)]
    if h.phase_a is not None:
        for p in range(3):
            rows.append([1.0 if p in s.phases else 0.0 for s in live])
            caps.append(max(0.0, h.phase_a[p]))
    return np.array(rows, np.float64).reshape(len(caps), len(live)), np.array(caps, np.float64)


def _room(terms: list[tuple[int, float]], free: list[float]) -> float:
    """Most amps one session can add given the free capacity of each constraint it loads."""
    return min((free[c] / w for c, w in terms), default=0.0)


def _terms(coef: np.ndarray) -> list[list[tuple[int, float]]]:
    return [[(c, float(coef[c, i])) for c in range(coef.shape[0]) if coef[c, i] > 0] for i in range(coef.shape[1])]


def _fill_cost(live, hours, coef, cap, by_cost) -> np.ndarray:
    n, k = hours.shape
    amps = np.zeros((n, k))
    free = cap.tolist()  # per slot, per constraint
    terms = _terms(coef)
    hrs = hours.tolist()
    window = hours.sum(axis=1)
    slack = [window[i] * s.max_a * s.watts_per_amp - s.need_wh for i, s in enumerate(live)]
    order = sorted(range(n), key=lambda i: (live[i].departure_ms, slack[i], live[i].since, live[i].name))
    for i in order:
        s = live[i]
        wpa = s.watts_per_amp
        left = s.need_wh
        for j in by_cost.tolist():
            if left <= EPS_WH:
                break
            h = hrs[i][j]
            if h <= 0:
                continue
            a = min(s.max_a, _room(terms[i], free[j]), left / (wpa * h))
            if a <= 1e-6:
                continue
            amps[i, j] = a
            for c, w in terms[i]:
                free[j][c] -= w * a
            left -= a * wpa * h
    return amps


def _fill_laxity(live, hours, coef, cap, starts, ends) -> np.ndarray:
    n, k = hours.shape
    amps = np.zeros((n, k))
    terms = _terms(coef)
    hrs = hours.tolist()
    left = [s.need_wh for s in live]
    rate = [s.max_a * s.watts_per_amp / 3600.0 for s in live]  # Wh per second at full current
    for j in range(k):
        free = cap[j].tolist()
        t0 = int(starts[j])
        ready = [i for i in range(n) if left[i] > EPS_WH and hrs[i][j] > 0]
        ready.sort(key=lambda i: (live[i].departure_ms - t0) / 1000.0 - left[i] / rate[i])
        for i in ready:
            s = live[i]
            wpa = s.watts_per_amp
            a = min(s.max_a, _room(terms[i], free), left[i] / (wpa * hrs[i][j]))
            if a <= 1e-6:
                continue
            amps[i, j] = a
            for c, w in terms[i]:
                free[c] -= w * a
            left[i] -= a * wpa * hrs[i][j]
    return amps


def _shortfall(live, hours, amps) -> np.ndarray:
    got = (amps * hours).sum(axis=1) * np.array([s.watts_per_amp for s in live]) if live else np.zeros(0)
    return np.maximum(0.0, np.array([s.need_wh for s in live]) - got)
