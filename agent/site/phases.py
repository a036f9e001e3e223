"""Per-phase limits: trim allocations so that no phase carries more than its headroom.

A three-phase car loads every phase with its current; a single-phase car loads only the phase its
charger is wired to. Lowest priority (latest arrival, not boosted) is trimmed first; an allocation
trimmed below the minimum current pauses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .allocator import Demand


def phase_loads(alloc: Mapping[str, float], wired: Mapping[str, tuple[int, ...]]) -> list[float]:
    load = [0.0, 0.0, 0.0]
    for n, a in alloc.items():
        for p in wired.get(n, ()):
            load[p] += a
    return load


def fit_phases(
    alloc: Mapping[str, float],
    demands: Sequence[Demand],
    wired: Mapping[str, tuple[int, ...]],
    headroom_a: Sequence[float],
    *,
    min_a: float,
) -> dict[str, float]:
    out = dict(alloc)
    order = sorted(demands, key=lambda d: (d.boosted, -d.since, d.name))  # trimmed first
    for p in range(3):
        for d in order:
            excess = phase_loads(out, wired)[p] - max(0.0, headroom_a[p])
            if excess <= 1e-9:
                break
            if p not in wired.get(d.name, ()) or out.get(d.name, 0.0) <= 0:
                continue
            a = math.floor((out[d.name] - excess) * 10 + 1e-9) / 10
            out[d.name] = a if a >= min_a else 0.0
    return out
