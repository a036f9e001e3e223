"""PV-only charging without flapping: start and stop thresholds and minimum on and off times.

A car in PV mode starts when its share of the surplus exceeds its minimum power by ``pv_start_kw``
and it has been off at least ``pv_min_off``. Once started it keeps at least the minimum current for
``pv_min_on``, and after that until its share falls ``pv_stop_kw`` below the minimum power (the grid
makes up the difference meanwhile, as evcc does); then it stops. A passing cloud therefore costs a
little grid energy instead of a contactor cycle. Stale PV readings stop it at once (fail-safe), and
the site limit always comes first (the allocator may still pause it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .allocator import Demand, fair_share

if TYPE_CHECKING:
    from .config import SolarConfig


@dataclass
class PvSwitch:
    config: SolarConfig
    on: dict[str, bool] = field(default_factory=dict)
    since_ms: dict[str, int] = field(default_factory=dict)  # last switch

    def forget(self, name: str) -> None:
        self.on.pop(name, None)
        self.since_ms.pop(name, None)

    def caps(self, pv: Sequence[Demand], surplus_w: float, *, fresh: bool, min_a: float, now_ms: int,
             switched: set[str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Each demand's share of the surplus (A; ``pv``: every car charging from PV), switched on and off
        with hysteresis for the ``switched`` ones (PV-only), with an event per start or stop."""
        c = self.config
        share = fair_share(pv, surplus_w, min_a=min_a)
        start = fair_share(pv, surplus_w - c.pv_start_kw * 1000 * len(pv), min_a=min_a)
        keep = fair_share(pv, surplus_w + c.pv_stop_kw * 1000 * len(pv), min_a=min_a)
        out: dict[str, float] = {}
        events: list[dict[str, Any]] = []
        for d in pv:
            n = d.name
            if n not in switched:
                out[n] = share.get(n, 0.0) if fresh else 0.0
                continue
            was = self.on.get(n, False)
            since = self.since_ms.get(n)
            held = since is not None and now_ms - since < (c.pv_min_on if was else c.pv_min_off) * 1000
            if not fresh:
                now_on, why = False, "PV readings are stale"
            elif was:
                now_on = held or keep.get(n, 0.0) >= min_a
                why = "" if now_on else (f"surplus {surplus_w / 1000:.1f} kW below the minimum "
                                         f"{d.watts_per_amp * min_a / 1000:.1f} kW less {c.pv_stop_kw:g} kW")
            else:
                now_on = not held and start.get(n, 0.0) >= min_a and d.cap_a >= min_a
                why = (f"surplus {surplus_w / 1000:.1f} kW reaches the minimum {d.watts_per_amp * min_a / 1000:.1f} kW"
                       + (f" plus {c.pv_start_kw:g} kW" if c.pv_start_kw else ""))
            if now_on != was:
                self.on[n] = now_on
                self.since_ms[n] = now_ms
                events.append({"type": "site_pv_mode", "ts": now_ms, "device": n, "charging": now_on,
                               "surplus_w": round(surplus_w), "reason": why})
            out[n] = max(min_a, share.get(n, 0.0)) if now_on else 0.0
        return out, events
