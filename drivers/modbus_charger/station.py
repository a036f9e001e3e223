"""Demo station: an SDM630 grid meter (site metric ``power_total``) and several CHARX chargers with cars arriving, on Modbus TCP.

The meter's total power is the building's base load plus whatever the chargers draw, so a site
controller pointed at it sees its own decisions on the meter::

    h = await start_station(meter_tcp="127.0.0.1:5020", chargers_tcp="127.0.0.1:5502", chargers=4)
    ...
    await h.stop()
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

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
