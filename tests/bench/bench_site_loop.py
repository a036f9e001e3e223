"""The site limit in the loop: the real agent against a site served by the project's Modbus simulators.

``edge-agent run`` polls an SDM630 simulator (the grid: base load + what the cars physically draw,
shown one second late, refreshed every 0.5 s) and five CHARX simulators whose cars follow a new limit
at 8 A/s up and 16 A/s down; grid and chargers are on two lines, each polled once a second. Cars arrive
one after another, one is full early, one leaves (tests/site_loop.py). Limit 30 kW. For the shipped
defaults and, in the same run, for the controller without lag compensation (``meter_lag = 0``,
``car_ramp = 0``), with the fair share and with the planner, it prints the worst meter sample against
the limit, how many samples were over, the agent's own published grid readings over the limit,
shortfall events, and the energy charged. Run: python tests/bench/bench_site_loop.py [seconds]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.mqtt_helpers import Broker  # noqa: E402
from tests.site_loop import LIMIT_KW, run_loop  # noqa: E402

NAIVE = "meter_lag = 0\ncar_ramp = 0\n"


def start_broker(directory: Path) -> Broker:
    """A mosquitto on a free port; another program may take the port first on a shared machine: retry."""
    for attempt in range(3):
        broker = Broker(directory / f"broker{attempt}")
        try:
            return broker.start()
        except RuntimeError:
            broker.kill()
    raise RuntimeError("mosquitto did not start on three free ports")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 90.0
    limit_w = LIMIT_KW * 1000
    print(f"limit {LIMIT_KW:.0f} kW, {seconds:.0f} s of cars per run; judged on every grid meter sample")
    print(f"{'controller':<34} {'samples':>7} {'worst/limit':>11} {'over':>5} {'published over':>14} "
          f"{'shortfalls':>10} {'charged kWh':>11}")
    for planner in (False, True):
        for label, options in (("without lag compensation", NAIVE), ("shipped defaults", "")):
            with tempfile.TemporaryDirectory() as d:
                broker = start_broker(Path(d))
                try:
                    r = run_loop(Path(d), broker, seconds=seconds, planner=planner, site_options=options)
                finally:
                    broker.kill()
            name = f"{'planner' if planner else 'fair share'}, {label}"
            print(f"{name:<34} {len(r.samples):>7} {r.worst.meter_w / limit_w:>11.3f} {r.over(limit_w):>5} "
                  f"{sum(1 for g in r.grid_published if g > limit_w):>14} {len(r.of_type('site_shortfall')):>10} "
                  f"{r.charged_wh() / 1000:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
