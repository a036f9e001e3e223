"""Sun and storage in the loop: the real agent, PV with clouds and a battery behind the grid meter.

The plant of tests/site_loop.py (SDM630 grid meter one second late, five CHARX chargers whose cars ramp,
the same cars) with a SunSpec hybrid inverter simulator added (25 kWp at noon in Shanghai on 21 June,
a 2 kWh / 30 kW battery), read and written by the agent over Modbus TCP. ``[site.solar]`` as in
tests/test_site_solar.py: peak shaving above 8 kW, surplus charging, export limit 2 kW, SoC 20-80 %,
one charger PV-only and one min+PV. Side by side, in the same run: the site without PV and battery,
then sunny and cloudy skies with the battery starting low and nearly full. Judged on every meter
sample: worst sample against the 30 kW limit, samples over it, the longest stretch exporting more
than the export limit, the battery's SoC range, energy charged into cars, grid import and export,
PV energy and the share of it used on site.

    python tests/bench/bench_site_solar.py [seconds]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from drivers.modbus_charger.station import PlantSpec  # noqa: E402
from drivers.sunspec.sim import SunSpecSim  # noqa: E402
from drivers.sunspec.simmodel import Battery, PvArray  # noqa: E402
from tests.bench.bench_site_loop import start_broker  # noqa: E402
from tests.site_loop import LIMIT_KW, run_loop  # noqa: E402
from tests.test_site_solar import EXPORT_LIMIT_KW, SOLAR, longest_export_s  # noqa: E402


def energy_kwh(samples, fn) -> float:
    return sum(fn(a) * (b.t - a.t) for a, b in zip(samples, samples[1:], strict=False)) / 3.6e6


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    limit_w = LIMIT_KW * 1000
    print(f"limit {LIMIT_KW:.0f} kW, export limit {EXPORT_LIMIT_KW:g} kW, {seconds:.0f} s of cars per run")
    print(f"{'site':<30} {'worst/limit':>11} {'over':>5} {'export>lim s':>12} {'SoC %':>11} {'cars kWh':>8} "
          f"{'import kWh':>10} {'export kWh':>10} {'PV kWh':>7} {'PV used':>7}")
    runs = [("no PV, no battery", None, None)]
    runs += [(f"{sky}, battery {'low' if soc < 0.5 else 'full'}", cloud, soc)
             for sky, cloud in (("sunny", 0.0), ("cloudy", 0.7)) for soc in (0.25, 0.79)]
    for label, cloud, soc in runs:
        spec = PlantSpec()
        if cloud is not None:
            sim = SunSpecSim(pv=PvArray(peak_w=25_000, cloudiness=cloud, edge_every_s=15, seed=2),
                             battery=Battery(capacity_wh=2000, max_charge_w=30_000, max_discharge_w=30_000,
                                             soc=soc, soc_min=0.05, soc_max=0.98), start_hour=12.0)
            spec = PlantSpec(solar=sim)
        with tempfile.TemporaryDirectory() as d:
            broker = start_broker(Path(d))
            try:
                r = run_loop(Path(d), broker, seconds=seconds, spec=spec, solar=SOLAR if cloud is not None else "")
            finally:
                broker.kill()
        s = r.samples
        pv = energy_kwh(s, lambda x: x.pv_w)
        exported = energy_kwh(s, lambda x: max(0.0, -x.physical_w))
        socs = f"{min(x.soc for x in s) * 100:.0f}-{max(x.soc for x in s) * 100:.0f}" if cloud is not None else "-"
        used = f"{(pv - exported) / pv:.0%}" if pv > 0 else "-"
        print(f"{label:<30} {r.worst.meter_w / limit_w:>11.3f} {r.over(limit_w):>5} "
              f"{longest_export_s(s, EXPORT_LIMIT_KW * 1000):>12.1f} {socs:>11} {r.charged_wh() / 1000:>8.3f} "
              f"{energy_kwh(s, lambda x: max(0.0, x.physical_w)):>10.3f} {exported:>10.3f} {pv:>7.3f} {used:>7}",
              flush=True)


if __name__ == "__main__":
    main()
