"""A simulated day with PV and a battery behind the grid meter, each charging mode side by side.

Run by ``bench_site_day.py`` after its table (or alone: python tests/bench/bench_site_day_solar.py [seed]).
Sites: the car park (6 x 22 kW, 80 kW) with 60 kWp of PV and a 120 kWh / 50 kW battery, and the taxi
station (20 x 120 kW DC, 1000 kW) with 400 kWp and a 1000 kWh / 500 kW battery; zero export; on a
sunny and on a cloudy July day in Shanghai (clouds passing every ~10 minutes, cutting the sun by up
to 72 %). Every run uses the departure-aware planner and the same cars; the first row of each site is
the same site without PV and battery. Rows: the charging mode of every charger (off, now, minpv, pv),
without and with valley charging of the battery. The PV forecast (latitude, longitude) is on.

Columns: peak grid import; self-consumption (share of the PV energy produced that is used on site) and
sun used (PV used on site, of what the array could have given uncurtailed); energy delivered
before departure and cars leaving short; the site's grid bill and its emissions (building and
chargers, import only: export is not paid); and the closed-loop constraints judged on every
1-minute sample: the worst grid import against the limit, the worst export against the export limit,
and the battery's state of charge against its bounds.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.processing.tariff import Tariff  # noqa: E402
from agent.site import SiteConfig  # noqa: E402
from drivers.sunspec.simmodel import Battery, PvArray  # noqa: E402
from tests.site_day import base_load_w, random_visits, taxi_visits  # noqa: E402
from tests.site_plant import SolarModel, run_plant  # noqa: E402

SOC_MIN, SOC_MAX = 10.0, 95.0
DAY_OF_YEAR = 197  # 15 July


def site_specs() -> list[dict]:
    park = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 7)], "limit_kw": 80,
            "planner": {"enabled": True}}
    taxi = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 21)], "limit_kw": 1000,
            "max_current": 174, "ramp_up": 60, "planner": {"enabled": True}}
    return [dict(name="car park: 6 x 22 kW, 80 kW limit, 60 kWp PV, 120 kWh / 50 kW battery", site=park,
                 chargers=6, max_a=32.0, base_w=30_000, taxi=False, pv_kw=60, batt_kwh=120, batt_kw=50,
                 shave_kw=40),
            dict(name="taxi station: 20 x 120 kW DC, 1000 kW limit, 400 kWp PV, 1000 kWh / 500 kW battery",
                 site=taxi, chargers=20, max_a=174.0, base_w=60_000, taxi=True, pv_kw=400, batt_kwh=1000,
                 batt_kw=500, shave_kw=700)]


def solar_table(s: dict, mode: str, valley: bool) -> dict:
    return {"inverter": "inv", "pv_peak_kw": s["pv_kw"], "battery": "inv", "battery_max_kw": s["batt_kw"],
            "battery_kwh": s["batt_kwh"], "soc_min": SOC_MIN, "soc_max": SOC_MAX, "peak_shave_kw": s["shave_kw"],
            "export_limit_kw": 0, "default_mode": mode, "valley_charge": valley, "latitude": 31.2,
            "longitude": 121.5}


async def run(s: dict, *, mode: str | None, valley: bool, cloudy: bool, seed: int, tariff: Tariff, day_ms: int):
    cfg = dict(s["site"])
    if mode is not None:
        cfg["solar"] = solar_table(s, mode, valley)
    site = SiteConfig.model_validate(cfg)
    visits = (taxi_visits(chargers=s["chargers"], seed=seed) if s["taxi"]
              else random_visits(chargers=s["chargers"], seed=seed))
    rng = random.Random(seed + 1)
    base_cache: dict[int, float] = {}

    def base(t: float) -> float:  # one draw per minute, the same in every run
        k = int(t // 60)
        if k not in base_cache:
            base_cache[k] = base_load_w(k * 60.0, rng, peak_w=s["base_w"])
        return base_cache[k]

    def solar(t_ref):
        pv = PvArray(peak_w=s["pv_kw"] * 1000, day_of_year=DAY_OF_YEAR, cloudiness=0.9 if cloudy else 0.0,
                     edge_every_s=600, seed=seed)
        batt = Battery(capacity_wh=s["batt_kwh"] * 1000, max_charge_w=s["batt_kw"] * 1000,
                       max_discharge_w=s["batt_kw"] * 1000, soc=0.3, soc_min=0.05, soc_max=0.98)
        return SolarModel(pv, batt, start_ms=day_ms, t=t_ref, instant=True)

    end = max([86_400.0] + [v.leave_s for v in visits])
    return await run_plant(site, visits=visits, chargers=s["chargers"], start_ms=day_ms, seconds=end, base_w=base,
                           tariff=tariff, solar=solar if mode is not None else None, tick_s=60.0, poll_s=60.0,
                           meter_lag_s=0.0, ramp_a_s=None, charger_max_a=s["max_a"])


def row(label: str, r, limit_kw: float) -> str:
    sc = "–" if r.pv_kwh <= 0 else f"{r.self_consumption:.0%} / {(r.pv_kwh - r.export_kwh) / r.pv_available_kwh:.0%}"
    soc = "–" if r.soc_range[0] != r.soc_range[0] else f"{r.soc_range[0]:.1f}-{r.soc_range[1]:.1f}"
    delivered = f"{r.on_time_kwh / r.requested_kwh:.1%}" if r.requested_kwh else "–"
    return (f"| {label} | {r.peak_grid_kw:.0f} | {sc} | {delivered} | {r.sessions_short}/{r.sessions} | "
            f"{r.grid_cost:.0f} | {r.grid_kgco2e:.0f} | {r.worst_grid_w / 1000 / limit_kw:.3f} | "
            f"{r.worst_export_w / 1000:.1f} | {soc} |")


async def main(seed: int) -> None:
    import datetime as dt

    from tests.bench.bench_site_day import shanghai

    tariff = shanghai()
    day_ms = tariff.local_day_start(int(dt.datetime(2024, 7, 15, 12, tzinfo=tariff.tz).timestamp() * 1000))
    print(f"\nWith PV and a battery (seed {seed}; 1-minute samples; planner on; zero export; battery SoC "
          f"{SOC_MIN:g}-{SOC_MAX:g} %, starting at 30 %)")
    for s in site_specs():
        limit_kw = s["site"]["limit_kw"]
        print(f"\n{s['name']}\n")
        print("| run | peak grid kW | self-consumption / sun used | delivered before departure | cars short | CNY/day | "
              f"kgCO2e/day | worst grid / limit | worst export kW (limit 0) | SoC % (bounds {SOC_MIN:g}-{SOC_MAX:g}) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        t0 = time.perf_counter()
        r = await run(s, mode=None, valley=False, cloudy=False, seed=seed, tariff=tariff, day_ms=day_ms)
        print(row("no PV, no battery", r, limit_kw), flush=True)
        for cloudy in (False, True):
            for valley in (False, True):
                for mode in ("off", "now", "minpv", "pv"):
                    r = await run(s, mode=mode, valley=valley, cloudy=cloudy, seed=seed, tariff=tariff, day_ms=day_ms)
                    label = f"{'cloudy' if cloudy else 'sunny'}, {mode}" + (", valley charging" if valley else "")
                    print(row(label, r, limit_kw), flush=True)
        print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
