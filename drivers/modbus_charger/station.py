"""Demo station: an SDM630 grid meter (site metric ``power_total``) and several CHARX chargers with cars arriving, on Modbus TCP.

The meter's total power is the building's base load plus whatever the chargers draw, so a site
controller pointed at it sees its own decisions on the meter::

    h = await start_station(meter_tcp="127.0.0.1:5020", chargers_tcp="127.0.0.1:5502", chargers=4)
    ...
    await h.stop()

``start_plant`` serves a closed-loop site: CHARX chargers whose cars ramp, and an SDM630 grid meter that lags.

The grid meter shows the site's physical power, base load + what the cars actually draw, as it was
``meter_lag_s`` ago, refreshed every ``meter_period_s`` (a real meter integrates and updates about
once a second). Cars follow a new current limit at ``ramp_up_a_s`` / ``ramp_down_a_s`` A per second.
Physics run on the monotonic clock, not on how often the loop gets to run: a busy machine makes the
meter update less often, never changes what it shows. Every meter update is kept as a sample, so a
site controller can be judged on what the meter saw::

    plant = await start_plant(PlantSpec(), meter_tcp=..., chargers_tcp=...)
    plant.script([(1.0, 1, Car(20_000))])  # a car on unit 1 a second from now
    ...
    await plant.stop(); max(s.meter_w for s in plant.samples)
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.charger_common import Car

from .sim import ChargerSimHandle, start


@dataclass
class StationHandle:
    meter: Any
    chargers: ChargerSimHandle
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.chargers.stop()
        await self.meter.stop()


async def start_station(*, meter_tcp: str = "127.0.0.1:5020", chargers_tcp: str = "127.0.0.1:5502", chargers: int = 4,
                        profile: str = "charx", base_load_w: float = 8000.0, speed: float = 1.0, seed: int = 1,
                        interval: float = 1.0) -> StationHandle:
    """Chargers are unit ids 1..N on ``chargers_tcp``; the meter is unit 1 on ``meter_tcp``."""
    from drivers.modbus_meter.sim import start as start_meter

    ch = await start(tcp=chargers_tcp, units={i + 1: profile for i in range(chargers)}, speed=speed,
                     arrivals=True, seed=seed)
    meter = await start_meter(profile="sdm630", tcp=meter_tcp, unit=1, update_interval=None)
    rng = random.Random(seed)

    async def feed() -> None:
        while True:
            charging = sum(s.evse.power_w(s.now()) for s in ch.sims.values())
            total = base_load_w * rng.uniform(0.8, 1.2) + charging
            for ph in ("l1", "l2", "l3"):
                meter.units[1].pinned[f"power_{ph}"] = total / 3
            await meter.pin(1, "power_total", total)
            await asyncio.sleep(interval)

    h = StationHandle(meter, ch)
    h.tasks.append(asyncio.get_running_loop().create_task(feed()))
    return h


def wavy_base(mean_w: float = 8000.0, swing_w: float = 2000.0, period_s: float = 120.0, noise_w: float = 100.0,
              seed: int = 1) -> Callable[[float], float]:
    """A building's base load: a slow swing plus a little noise (W at plant time ``t`` s)."""
    rng = random.Random(seed)
    return lambda t: mean_w + swing_w * math.sin(2 * math.pi * t / period_s) + rng.uniform(-noise_w, noise_w)


@dataclass(frozen=True)
class PlantSpec:
    chargers: int = 5
    base_w: Callable[[float], float] = field(default_factory=wavy_base)
    ramp_up_a_s: float = 8.0  # a car follows a higher offer within ~4 s (IEC 61851 allows 5 s)
    ramp_down_a_s: float = 16.0
    meter_lag_s: float = 1.0  # the meter's value is the site's power this long ago
    meter_period_s: float = 0.5  # how often the meter's registers (and the samples) update
    solar: Any = None  # a drivers.sunspec.sim.SunSpecSim (PV and battery behind the meter), served on solar_tcp


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # plant time, s
    meter_w: float  # what the meter's registers show from now on
    physical_w: float  # the site's power at this moment
    charging_w: float
    pv_w: float = 0.0
    battery_w: float = 0.0  # positive discharging
    soc: float = float("nan")  # battery state of charge, 0..1
    inverter_writes: int = 0  # control writes the inverter had received by then


@dataclass
class PlantHandle:
    spec: PlantSpec
    meter: Any
    chargers: ChargerSimHandle
    samples: list[Sample] = field(default_factory=list)
    task: asyncio.Task | None = None
    solar: Any = None  # the SunSpec simulator's handle, when the plant has PV and a battery
    events: list[tuple[float, int, Car | None]] = field(default_factory=list)  # (plant time, unit, car or unplug)
    now: float = 0.0  # plant time of the last update
    t0: float = 0.0  # the clock's reading at plant time 0

    def script(self, plugs: list[tuple[float, int, Car]], unplugs: list[tuple[float, int]] = ()) -> float:
        """Plug cars in (and out) at these times, in s from now; returns the plant time now."""
        t = self.now
        self.events = sorted([(t + dt, u, c) for dt, u, c in plugs] + [(t + dt, u, None) for dt, u in unplugs],
                             key=lambda e: e[0])
        return t

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.chargers.stop()
        await self.meter.stop()
        if self.solar is not None:
            await self.solar.stop()


async def start_plant(spec: PlantSpec, *, meter_tcp: str, chargers_tcp: str, solar_tcp: str | None = None,
                      clock: Callable[[], float] = time.monotonic) -> PlantHandle:
    """Chargers are unit ids 1..N on ``chargers_tcp`` (no cars until ``spec.plugs``); the meter is unit 1 on ``meter_tcp``."""
    from drivers.modbus_meter.sim import start as start_meter

    ch = await start(tcp=chargers_tcp, units={i + 1: "charx" for i in range(spec.chargers)}, clock=clock)
    for sim in ch.sims.values():
        sim.evse.ramp_up_a_s, sim.evse.ramp_down_a_s = spec.ramp_up_a_s, spec.ramp_down_a_s
    meter = await start_meter(profile="sdm630", tcp=meter_tcp, unit=1, update_interval=None)
    h = PlantHandle(spec, meter, ch)
    sun = spec.solar
    if sun is not None:  # the site's power is then base + charging - PV - battery discharge
        from drivers.sunspec.sim import start as start_solar

        assert solar_tcp is not None, "a plant with solar needs solar_tcp"
        h.solar = await start_solar(tcp=solar_tcp, sim=sun)
    t0 = h.t0 = clock()
    history_t: list[float] = []
    history_w: list[float] = []

    async def run() -> None:
        while True:
            t = h.now = clock() - t0
            while h.events and h.events[0][0] <= t:
                _, unit, car = h.events.pop(0)
                if car is None:
                    ch.sims[unit].unplug()
                else:
                    ch.sims[unit].plug(car)
            charging = 0.0
            for sim in ch.sims.values():
                sim.evse.advance(sim.now())
                charging += sim.evse.power_w(sim.now())
            pv = batt = 0.0
            if sun is not None:
                sun.advance()
                pv, batt = sun.pv_w(sun.now()), sun.battery.power_w
            physical = spec.base_w(t) + charging - pv - batt
            history_t.append(t)
            history_w.append(physical)
            if len(history_t) > 1000:  # keep what the lag can reach back to
                del history_t[:500], history_w[:500]
            i = bisect.bisect_right(history_t, t - spec.meter_lag_s) - 1
            shown = history_w[max(0, i)]
            for ph in ("l1", "l2", "l3"):
                meter.units[1].pinned[f"power_{ph}"] = shown / 3
            await meter.pin(1, "power_total", shown)
            h.samples.append(Sample(t, meter.values_of(1)["power_total"], physical, charging, pv, batt,
                                    sun.battery.soc if sun is not None else math.nan,
                                    len(sun.writes) if sun is not None else 0))
            await asyncio.sleep(spec.meter_period_s)

    h.task = asyncio.get_running_loop().create_task(run())
    return h
