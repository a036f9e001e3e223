"""Share a power budget among chargers: fair share (water filling), minimum current or pause, ramp limits.

Pure functions over plain data, so the site controller, the day simulation and the benchmark run the
same code. The invariant callers rely on: sum(alloc_a * watts_per_amp) <= budget (when budget >= 0),
and every allocation is 0 (pause) or >= min_a.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

RESOLUTION_A = 0.1


@dataclass(frozen=True, slots=True)
class Demand:
    name: str
    watts_per_amp: float  # voltage x phases
    cap_a: float  # the most this charger may get (user limit, hardware, car)
    prev_a: float = 0.0  # what it has now
    boosted: bool = False
    since: float = 0.0  # connection order; earlier wins when not everyone can charge


def _floor(a: float) -> float:
    return round(math.floor(a / RESOLUTION_A + 1e-9) * RESOLUTION_A, 1)


def fair_share(demands: Sequence[Demand], budget_w: float, *, min_a: float) -> dict[str, float]:
    """Water-fill ``budget_w`` over ``demands``; pause the lowest-priority ones if not all get ``min_a``."""
    out = {d.name: 0.0 for d in demands}
    active = [d for d in demands if d.cap_a >= min_a]
    # priority: already charging first (no flapping), then who came first
    active.sort(key=lambda d: (d.prev_a <= 0, d.since, d.name))
    while active and sum(min_a * d.watts_per_amp for d in active) > budget_w + 1e-9:
        active.pop()
    remaining = max(0.0, budget_w)
    rest = sorted(active, key=lambda d: d.cap_a)
    while rest:
        level = remaining / sum(d.watts_per_amp for d in rest)
        d = rest[0]
        if d.cap_a <= level:
            out[d.name] = _floor(d.cap_a)
            remaining -= out[d.name] * d.watts_per_amp
            rest.pop(0)
            continue
        for d in rest:
            out[d.name] = max(min_a, _floor(level)) if level >= min_a else 0.0
        break
    return out


def allocate(
    demands: Sequence[Demand],
    *,
    budget_w: float,
    tou_cap_w: float | None = None,
    min_a: float = 6.0,
    ramp_a: float | None = None,
) -> dict[str, float]:
    """Boosted chargers share the site budget first; the others share what is left, capped by ``tou_cap_w``."""
    budget_w = max(0.0, budget_w)
    boosted = [d for d in demands if d.boosted]
    normal = [d for d in demands if not d.boosted]
    out = fair_share(boosted, budget_w, min_a=min_a)
    used = sum(out[d.name] * d.watts_per_amp for d in boosted)
    left = budget_w - used
    if tou_cap_w is not None:
        left = min(left, max(0.0, tou_cap_w))
    out.update(fair_share(normal, left, min_a=min_a))
    if ramp_a is not None:
        for d in demands:
            target = out[d.name]
            if target > d.prev_a:
                out[d.name] = min(target, _floor(max(d.prev_a, min_a) + ramp_a))
    return out


def allocate_in_order(
    demands: Sequence[Demand], *, budget_w: float, min_a: float = 6.0, ramp_a: float | None = None
) -> dict[str, float]:
    """Grant each demand its cap in the given order (boosted ones first) while the budget lasts; a
    demand that cannot get ``min_a`` pauses. Used to dispatch a plan: the most urgent session first."""
    out = {d.name: 0.0 for d in demands}
    left = max(0.0, budget_w)
    for d in sorted(demands, key=lambda d: not d.boosted):  # stable: keeps the given order otherwise
        a = min(d.cap_a, left / d.watts_per_amp if d.watts_per_amp > 0 else 0.0)
        if ramp_a is not None and a > d.prev_a:
            a = min(a, max(d.prev_a, min_a) + ramp_a)
        a = _floor(a)
        if a < min_a:
            continue
        out[d.name] = a
        left -= a * d.watts_per_amp
    return out


def hold_back(
    alloc: dict[str, float], demands: Sequence[Demand], *, budget_w: float, still_w: dict[str, float], min_a: float = 6.0
) -> dict[str, float]:
    """Trim this step's increases (latest arrival first) so that, with chargers still drawing more than
    they were just told (``still_w``, W), the total stays within ``budget_w``; decreases stand."""
    out = dict(alloc)
    total = sum(max(out[d.name] * d.watts_per_amp, still_w.get(d.name, 0.0)) for d in demands)
    excess = total - max(0.0, budget_w)
    for d in sorted(demands, key=lambda d: (d.since, d.name), reverse=True):
        if excess <= 1e-9:
            break
        a = out[d.name]
        if a <= d.prev_a or d.watts_per_amp <= 0:
            continue
        keep = _floor(max(d.prev_a, a - excess / d.watts_per_amp))
        if keep < min_a:
            keep = d.prev_a if d.prev_a >= min_a else 0.0
        excess -= (a - keep) * d.watts_per_amp
        out[d.name] = keep
    return out
