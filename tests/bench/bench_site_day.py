"""A simulated day at a car park with six 22 kW chargers on an 80 kW connection.

Prints, side by side: charge as fast as possible (no management), site load management alone, and
load management with time-of-use preference. Same cars, same building load, same tariff
(peak 1.512 / flat 1.162 / valley 0.87 per kWh). Run: python tests/bench/bench_site_day.py [seeds]
"""

from __future__ import annotations

import asyncio
import sys

from agent.site import SiteConfig
from agent.site.dayrun import run_day

LIMIT_KW = 80
BASE = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 7)], "limit_kw": LIMIT_KW}


async def main(seeds: list[int]) -> None:
    strategies = [
        ("as fast as possible", None),
        ("site limit only", SiteConfig.model_validate({**BASE, "tou": {"enabled": False}})),
        ("site limit + TOU", SiteConfig.model_validate({**BASE, "tou": {"peak_max_kw": 11}})),
    ]
    rows = []
    for label, cfg in strategies:
        tot = dict(peak=0.0, energy=0.0, unmet=0.0, valley=0.0, peak_e=0.0, cost=0.0, over=0)
        for seed in seeds:
            r = await run_day(cfg, seed=seed, limit_w=LIMIT_KW * 1000, label=label)
            tot["peak"] = max(tot["peak"], r.peak_grid_kw)
            tot["energy"] += r.energy_kwh
            tot["unmet"] += r.unmet_kwh
            tot["valley"] += r.valley_kwh
            tot["peak_e"] += r.peak_kwh
            tot["cost"] += r.cost
            tot["over"] += r.steps_over_limit
        rows.append((label, tot))
    n = len(seeds)
    print(f"{n} simulated day(s), 6 chargers, {LIMIT_KW} kW site limit, 1-minute steps\n")
    hdr = f"{'':28}" + "".join(f"{label:>22}" for label, _ in rows)
    print(hdr)

    def line(name, fmt):
        print(f"{name:28}" + "".join(f"{fmt(t):>22}" for _, t in rows))

    line("peak grid power (kW)", lambda t: f"{t['peak']:.1f}")
    line("minutes over the limit", lambda t: f"{t['over']}")
    line("energy delivered (kWh/day)", lambda t: f"{t['energy'] / n:.1f}")
    line("energy not delivered (kWh/day)", lambda t: f"{t['unmet'] / n:.1f}")
    line("share in valley hours", lambda t: f"{t['valley'] / t['energy']:.1%}")
    line("share in peak hours", lambda t: f"{t['peak_e'] / t['energy']:.1%}")
    line("charging cost (CNY/day)", lambda t: f"{t['cost'] / n:.1f}")
    line("average price (CNY/kWh)", lambda t: f"{t['cost'] / t['energy']:.3f}")
    base = rows[0][1]
    ours = rows[-1][1]
    print(f"\nTOU scheduler vs as-fast-as-possible: peak power x{ours['peak'] / base['peak']:.2f}, "
          f"valley share x{(ours['valley'] / ours['energy']) / (base['valley'] / base['energy']):.2f}, "
          f"price per kWh x{(ours['cost'] / ours['energy']) / (base['cost'] / base['energy']):.2f}")


if __name__ == "__main__":
    asyncio.run(main([int(s) for s in sys.argv[1:]] or [1, 2, 3, 4, 5]))
