"""A simulated day at two sites, three ways: as fast as possible, the time-of-use cap, and the planner.

Sites:
  * a car park: six 22 kW chargers on an 80 kW connection, office and overnight cars;
  * a taxi station: twenty 120 kW DC chargers, ~550 sessions a day, short full-power stays, on a
    1000 kW connection (and the same station squeezed onto 630 kW, where not every taxi can be served).

Same cars, same building load, same tariff (config/tariff-shanghai.toml on a July weekday, with its
critical peak), carbon at the 2022 East China factor (0.5617 kgCO2e/kWh). The planner is told each car's
departure and energy on arrival (as a fleet system or a driver's app would). Energy "before departure"
counts what each car had when it left. Then the same sites with PV and a battery, each charging mode
side by side (tests/bench/bench_site_day_solar.py, first seed). Run: python tests/bench/bench_site_day.py [seeds]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tomllib
from pathlib import Path

from agent.processing.config import TariffConfig
from agent.processing.tariff import Tariff
from agent.site import SiteConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the day simulation lives in tests/site_day.py
from tests.site_day import run_day, taxi_visits  # noqa: E402


def shanghai() -> Tariff:
    data = tomllib.loads((ROOT / "config" / "tariff-shanghai.toml").read_text())
    return Tariff(TariffConfig.model_validate(data["processing"]["tariff"]), tz=data["processing"]["timezone"])


def sites() -> list[dict]:
    park = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 7)], "limit_kw": 80}
    taxi = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 21)], "limit_kw": 1000,
            "max_current": 174, "ramp_up": 60}
    return [
        dict(name="car park: 6 x 22 kW, 80 kW limit", site=park, cap_kw=11, chargers=6, max_a=32.0, base_w=30_000,
             taxi=False),
        dict(name="taxi station: 20 x 120 kW DC, 1000 kW limit", site=taxi, cap_kw=500, chargers=20, max_a=174.0,
             base_w=60_000, taxi=True),
        dict(name="taxi station: 20 x 120 kW DC, 630 kW limit", site={**taxi, "limit_kw": 630}, cap_kw=300,
             chargers=20, max_a=174.0, base_w=60_000, taxi=True),
    ]


async def run_site(s: dict, seeds: list[int], tariff: Tariff, day_ms: int) -> list[tuple[str, dict]]:
    limit_w = s["site"]["limit_kw"] * 1000
    strategies = [
        ("as fast as possible", None),
        ("TOU cap only", SiteConfig.model_validate({**s["site"], "tou": {"peak_max_kw": s["cap_kw"]}})),
        ("planner", SiteConfig.model_validate({**s["site"], "planner": {"enabled": True}})),
    ]
    rows = []
    for label, cfg in strategies:
        tot = dict(peak=0.0, over=0, req=0.0, on_time=0.0, energy=0.0, valley=0.0, cost=0.0, co2=0.0, sessions=0,
                   short=0, reported=0)
        for seed in seeds:
            visits = taxi_visits(chargers=s["chargers"], seed=seed) if s["taxi"] else None
            r = await run_day(cfg, chargers=s["chargers"], seed=seed, limit_w=limit_w, label=label, visits=visits,
                              charger_max_a=s["max_a"], base_peak_w=s["base_w"], tariff=tariff, day_start_ms=day_ms)
            tot["peak"] = max(tot["peak"], r.peak_grid_kw)
            tot["over"] += r.steps_over_limit
            tot["req"] += r.requested_kwh
            tot["on_time"] += r.on_time_kwh
            tot["energy"] += r.energy_kwh
            tot["valley"] += r.valley_kwh
            tot["cost"] += r.cost
            tot["co2"] += r.kgco2e
            tot["sessions"] += r.sessions
            tot["short"] += r.sessions_short
            tot["reported"] += len({e["device"] + str(e["departure"]) for e in r.events if e["type"] == "site_shortfall"})
        rows.append((label, tot))
    return rows


def show(name: str, limit_kw: float, rows: list[tuple[str, dict]], n: int) -> None:
    print(f"\n{name} ({n} day(s), 1-minute steps)")
    print(f"{'':38}" + "".join(f"{label:>32}" for label, _ in rows))

    def line(title, fmt):
        print(f"{title:38}" + "".join(f"{fmt(t):>32}" for _, t in rows))

    line("peak grid power / limit (kW)", lambda t: f"{t['peak']:.0f} / {limit_kw:.0f}")
    line("minutes over the limit", lambda t: f"{t['over']}")
    line("energy requested (kWh/day)", lambda t: f"{t['req'] / n:.0f}")
    line("delivered before departure, cars short", lambda t: f"{t['on_time'] / n:.0f} ({t['on_time'] / t['req']:.1%}), "
         f"{t['short']}/{t['sessions']}")
    line("shortfalls reported in advance", lambda t: f"{t['reported']}")
    line("share in valley hours", lambda t: f"{t['valley'] / t['energy']:.1%}")
    line("charging cost (CNY/day)", lambda t: f"{t['cost'] / n:.0f}")
    line("average price (CNY/kWh)", lambda t: f"{t['cost'] / t['energy']:.3f}")
    line("emissions (kgCO2e/day)", lambda t: f"{t['co2'] / n:.0f}")


async def main(seeds: list[int]) -> None:
    tariff = shanghai()
    day_ms = tariff.local_day_start(int(dt.datetime(2024, 7, 15, 12, tzinfo=tariff.tz).timestamp() * 1000))
    print("Tariff: config/tariff-shanghai.toml, Monday 15 July 2024 (critical peak 12-14); "
          "carbon 0.5617 kgCO2e/kWh (East China 2022)")
    for s in sites():
        rows = await run_site(s, seeds, tariff, day_ms)
        show(s["name"], s["site"]["limit_kw"], rows, len(seeds))
    from tests.bench.bench_site_day_solar import main as with_pv_and_battery

    await with_pv_and_battery(seeds[0])  # the same sites with PV and a battery, each charging mode


if __name__ == "__main__":
    asyncio.run(main([int(x) for x in sys.argv[1:]] or [1, 2, 3]))
