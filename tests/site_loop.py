"""The real agent (a subprocess) controlling a closed-loop site served by the project's Modbus simulators.

Test and benchmark support: five CHARX simulators whose cars ramp, an SDM630 whose power is the base
load plus what the cars draw (with meter lag), a real mosquitto, and ``edge-agent run``. The agent
polls the meter and the chargers on two lines, each once a second, so their readings are taken at
different moments, as on a real site. The verdict is taken on the meter's own samples.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from drivers.charger_common import Car
from drivers.modbus_charger.station import PlantSpec, Sample, start_plant
from tests.chaos.agent_proc import AgentProcess
from tests.mqtt_helpers import Broker, Subscriber
from tests.sim_thread import free_port

GATEWAY = "gw-loop"
LIMIT_KW = 30.0
MAX_BATTERY_W = 30_000

# cars arriving one after another (s after the start, unit, car): ramps while others charge,
# a car that takes only 16 A, a single-phase car, and a car that is full early and frees its share
CARS: list[tuple[float, int, Car]] = [
    (0.0, 1, Car(need_wh=40_000, max_a=32)),
    (6.0, 2, Car(need_wh=40_000, max_a=32)),
    (12.0, 3, Car(need_wh=40_000, max_a=16)),
    (18.0, 4, Car(need_wh=1_500, max_a=32)),
    (24.0, 5, Car(need_wh=40_000, max_a=32, phases=1)),
]
UNPLUGS: list[tuple[float, int]] = [(50.0, 2)]


SOLAR_DEVICE = ('[[devices]]\nname = "inv"\ntype = "sunspec"\nmodels = [103, 123, 124, 802]\nunit = 1\n'
                'line = "solar"\npoll_interval = 1.0\nwritable = ["power_limit", "battery_power"]\n')


def agent_config(tmp: Path, broker: Broker, meter_port: int, charger_port: int, *, chargers: int,
                 planner: bool, site_options: str = "", solar_port: int | None = None, solar: str = "") -> Path:
    """``solar``: the [site.solar] table's body (with a SunSpec PV + battery device "inv" on ``solar_port``)."""
    names = [f"cp{i}" for i in range(1, chargers + 1)]
    body = [f'[gateway]\nid = "{GATEWAY}"\nstate_dir = "{tmp / "state"}"\n',
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n',
            f'[lines.meter]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {meter_port}\n',
            f'[lines.chargers]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {charger_port}\n',
            '[[devices]]\nname = "grid"\ntype = "modbus_meter"\nprofile = "sdm630"\nmetrics = ["power_total"]\n'
            'unit = 1\nline = "meter"\npoll_interval = 1.0\n']
    for i, n in enumerate(names, 1):
        body.append(f'[[devices]]\nname = "{n}"\ntype = "modbus_charger"\nprofile = "charx"\nunit = {i}\n'
                    f'line = "chargers"\npoll_interval = 1.0\nwritable = ["current_limit"]\n')
    if solar_port is not None:
        body.append(f'[lines.solar]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {solar_port}\n')
        body.append(SOLAR_DEVICE + f"battery_max_w = {MAX_BATTERY_W}\n")
    # one price all day, so the plan (and the test) does not depend on the hour it runs at
    body.append('[processing.tariff]\nprices = { flat = 1.0 }\nweekday = [{ start = "00:00", end = "24:00", period = "flat" }]\n')
    site = f'[site]\nchargers = {orjson.dumps(names).decode()}\nlimit_kw = {LIMIT_KW}\n{site_options}'
    site += ('[site.planner]\nenabled = true\ndefault = { dwell_hours = 4, energy_kwh = 10 }\n' if planner
             else '[site.tou]\nenabled = false\n')
    site += f"[site.solar]\n{solar}\n" if solar_port is not None else ""
    body.append(site + '[site.grid_meter]\ndevice = "grid"\nmetric = "power_total"\n')
    path = tmp / "agent.toml"
    path.write_text("\n".join(body))
    return path


@dataclass
class LoopResult:
    samples: list[Sample]  # the meter's samples while cars were plugged in
    events: list[dict[str, Any]] = field(default_factory=list)
    grid_published: list[float] = field(default_factory=list)  # the agent's own grid readings (W)
    grid_read_t: list[float] = field(default_factory=list)  # when the agent read the grid meter, in plant time
    log: str = ""

    @property
    def worst(self) -> Sample:
        return max(self.samples, key=lambda s: s.meter_w)

    def over(self, limit_w: float) -> int:
        return sum(1 for s in self.samples if s.meter_w > limit_w)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def charged_wh(self) -> float:
        return sum(a.charging_w * (b.t - a.t) for a, b in zip(self.samples, self.samples[1:], strict=False)) / 3600


def run_loop(tmp: Path, broker: Broker, *, seconds: float = 70.0, planner: bool = False,
             spec: PlantSpec | None = None, cars: list[tuple[float, int, Car]] = CARS,
             unplugs: list[tuple[float, int]] = UNPLUGS, ready_timeout: float = 180.0,
             site_options: str = "", solar: str = "") -> LoopResult:
    """Start the plant, the agent and a subscriber; when the agent controls the site, run the cars'
    script for ``seconds`` of plant time; return the meter's samples and the agent's events."""
    spec = spec or PlantSpec()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="site-plant", daemon=True)
    thread.start()
    meter_port, charger_port = free_port(), free_port()
    solar_port = free_port() if spec.solar is not None else None
    plant = asyncio.run_coroutine_threadsafe(start_plant(spec, meter_tcp=f"127.0.0.1:{meter_port}",
                                                         chargers_tcp=f"127.0.0.1:{charger_port}",
                                                         solar_tcp=f"127.0.0.1:{solar_port}" if solar_port else None),
                                             loop).result(60)
    sub = Subscriber(broker, [f"edge/{GATEWAY}/event", f"edge/{GATEWAY}/telemetry/#"]).start()
    config = agent_config(tmp, broker, meter_port, charger_port, chargers=spec.chargers, planner=planner,
                          site_options=site_options, solar_port=solar_port, solar=solar)
    agent = AgentProcess(config, tmp / "agent.log").start()
    try:
        try:
            sub.wait_for(1, ready_timeout, predicate=lambda m: m.topic.endswith("/event")
                         and m.json().get("type") == "site_allocation")
        except TimeoutError as e:
            raise AssertionError(f"the agent never controlled the site: {agent.log_tail()}") from e
        asyncio.run_coroutine_threadsafe(_script(plant, cars, unplugs), loop).result(30)
        t0 = plant.now
        while plant.now < t0 + seconds:  # plant time: a slow machine runs longer, never shorter
            if agent.proc.poll() is not None:
                raise AssertionError(f"the agent exited: {agent.log_tail()}")
            time.sleep(0.5)
    finally:
        agent.terminate()
        asyncio.run_coroutine_threadsafe(plant.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sub.stop()
    msgs = sub.snapshot()
    events, seen = [], set()
    for m in msgs:  # delivery is at least once: an event resent after a reconnect has its seq, counted once
        if m.topic.endswith("/event") and (e := m.json()).get("seq", object()) not in seen:
            seen.add(e.get("seq"))
            events.append(e)
    grid = [r for m in msgs if "/telemetry/" in m.topic and m.json().get("device") == "grid"
            for r in m.json().get("readings", []) if r.get("metric") == "power_total" and r.get("value") is not None]
    plant_t0_wall = time.time() - time.monotonic() + plant.t0  # the plant runs on the monotonic clock
    return LoopResult([s for s in plant.samples if s.t >= t0], events, [r["value"] for r in grid],
                      sorted({r["ts"] / 1000 - plant_t0_wall for r in grid}), agent.log_tail(20000))


def run_loops(tmp: Path, runs: dict[str, dict[str, Any]]) -> dict[str, LoopResult | BaseException]:
    """Several closed loops side by side, each with its own broker, plant and agent (``runs``: name ->
    keyword arguments of :func:`run_loop`); each one's result, or what it raised. The plant runs on
    the monotonic clock and the agents mostly wait for their next poll, so the loops cost the wall
    time of the longest one, not the sum."""
    results: dict[str, LoopResult | BaseException] = {}

    def one(name: str, kwargs: dict[str, Any]) -> None:
        d = tmp / name
        d.mkdir(parents=True)
        broker = Broker(d / "broker").start()
        try:
            results[name] = run_loop(d, broker, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the test that asked for this run
            results[name] = e
        finally:
            broker.kill()
    threads = [threading.Thread(target=one, args=(n, kw), name=f"site-loop-{n}") for n, kw in runs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def result_of(results: dict[str, LoopResult | BaseException], name: str) -> LoopResult:
    r = results[name]
    if isinstance(r, BaseException):
        raise r
    return r


async def _script(plant, cars, unplugs) -> None:
    plant.script(cars, unplugs)
