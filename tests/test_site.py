"""Site load management: fair share, pause, ramp, fail-safe on stale meter data, limits over a day, TOU."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.app import Agent
from agent.commands import WriteGate, Writer
from agent.commands.parse import Action
from agent.config import load_config_text
from agent.model import MetricSpec, Quality
from agent.processing.config import TariffConfig
from agent.processing.tariff import Tariff
from agent.series import LatestValues, SeriesTable
from agent.site import Demand, SiteConfig, allocate
from agent.site.controller import SiteController
from drivers.charger_common import CHARGER_METRICS, Car, EvseModel
from drivers.modbus_charger.sim import start as charger_sim
from tests.site_day import DAY_START_MS, ModelCharger, model_charger_config, run_day

SAMPLES = Path(__file__).resolve().parents[1] / "drivers" / "replay" / "samples"

WPA = 230 * 3


def test_fair_share_splits_evenly_and_respects_caps():
    d = [Demand("a", WPA, 32), Demand("b", WPA, 32), Demand("c", WPA, 10)]
    out = allocate(d, budget_w=40 * WPA)
    assert out == {"a": 15.0, "b": 15.0, "c": 10.0}


def test_not_enough_for_everyone_pauses_the_latest_arrival():
    d = [Demand("a", WPA, 32, since=1), Demand("b", WPA, 32, since=2), Demand("c", WPA, 32, since=3)]
    out = allocate(d, budget_w=13 * WPA)
    assert out == {"a": 6.5, "b": 6.5, "c": 0.0}
    assert allocate(d, budget_w=5 * WPA) == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_ramp_limits_increases_only():
    d = [Demand("a", WPA, 32, prev_a=6), Demand("b", WPA, 32, prev_a=30)]
    out = allocate(d, budget_w=20 * WPA, ramp_a=4)
    assert out == {"a": 10.0, "b": 10.0}


def test_boost_goes_first_and_ignores_tou_cap():
    d = [Demand("a", WPA, 32), Demand("taxi", WPA, 32, boosted=True)]
    out = allocate(d, budget_w=40 * WPA, tou_cap_w=0)
    assert out == {"a": 0.0, "taxi": 32.0}


@settings(max_examples=300, deadline=None)
@given(
    caps=st.lists(st.floats(0, 40), min_size=0, max_size=8),
    prev=st.lists(st.floats(0, 32), min_size=8, max_size=8),
    phases=st.lists(st.sampled_from([1, 3]), min_size=8, max_size=8),
    boost=st.lists(st.booleans(), min_size=8, max_size=8),
    budget=st.floats(-10_000, 200_000),
    tou=st.none() | st.floats(0, 100_000),
    ramp=st.none() | st.floats(0.5, 10),
)
def test_allocation_never_exceeds_budget_and_is_zero_or_at_least_min(caps, prev, phases, boost, budget, tou, ramp):
    d = [Demand(f"c{i}", 230 * phases[i], c, prev[i], boost[i], i) for i, c in enumerate(caps)]
    out = allocate(d, budget_w=budget, tou_cap_w=tou, min_a=6, ramp_a=ramp)
    used = sum(out[x.name] * x.watts_per_amp for x in d)
    assert used <= max(0.0, budget) + 1e-6
    if tou is not None:
        assert sum(out[x.name] * x.watts_per_amp for x in d if not x.boosted) <= tou + 1e-6
    for x in d:
        a = out[x.name]
        assert a == 0 or 6 <= a <= max(x.cap_a, 6) + 1e-6


# ------------------------------------------------------------------------------------ controller
class Rig:
    """A site with a grid meter and real SiteController over LatestValues; chargers are EvseModels."""

    def __init__(self, n=3, tariff=None, audit=None, bounds=None, **site_kw):
        self.t = 0.0
        self.names = [f"cp{i + 1}" for i in range(n)]
        self.evse = {x: EvseModel() for x in self.names}
        self.drivers = {x: ModelCharger(self.evse[x], lambda: self.t) for x in self.names}
        self.table = SeriesTable()
        self.table.add_device("grid", [MetricSpec("power", "W")])
        for x in self.names:
            self.table.add_device(x, CHARGER_METRICS)
        self.latest = LatestValues(len(self.table))
        cfg = {"grid_meter": {"device": "grid"}, "chargers": self.names, "limit_kw": 30, "margin_kw": 0,
               "ramp_up": None, "tou": {"enabled": False},
               "meter_lag": 0, "car_ramp": 0, **site_kw}  # one consistent instant per step (tests/test_site_loop.py has lag)
        configs = {x: model_charger_config(x, *(bounds or {}).get(x, (6.0, 32.0))) for x in self.names}
        gate = WriteGate(configs, self.drivers, self, audit=audit)
        self.site = SiteController(SiteConfig.model_validate(cfg), self.drivers, self.latest, self.table, self,
                                   tariff or Tariff(), charger_configs=configs, gate=gate)
        self.base_w = 5000.0

    def ms(self) -> int:
        return 1_700_000_000_000 + int(self.t * 1000)

    now_ms = ms  # the rig is the controller's clock

    def monotonic(self) -> float:
        return self.t

    def publish(self, *, meter=True, quality=0):
        sids, vals, q = [], [], []
        if meter:
            sids.append(self.table.id("grid", "power"))
            vals.append(self.base_w + sum(e.power_w(self.t) for e in self.evse.values()))
            q.append(quality)
        for x in self.names:
            idx = self.table.index(x)
            for s in self.drivers[x].status().samples():
                sids.append(idx[s.metric])
                vals.append(s.value)
                q.append(0)
        n = len(sids)
        self.latest.update(np.asarray(sids, np.int32), np.full(n, self.ms(), np.int64), np.asarray(vals), np.asarray(q, np.uint32))

    async def step(self, dt=5.0, **kw):
        self.t += dt
        self.publish(**kw)
        return await self.site.step(self.ms())


async def test_shares_and_pauses_and_follows_base_load():
    rig = Rig()
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    ev = await rig.step()
    assert ev[-1]["type"] == "site_allocation"
    # 30 kW - 5 kW base = 25 kW / 3 chargers / 690 W/A = 12.07 A
    assert rig.site.alloc == {"cp1": 12.0, "cp2": 12.0, "cp3": 12.0}
    assert all(e.current_a(rig.t) == 12.0 for e in rig.evse.values())
    rig.base_w = 20_000  # 10 kW left = 14.5 A: two chargers at 7.2 A, the third pauses
    await rig.step()
    assert sorted(rig.site.alloc.values()) == [0.0, 7.2, 7.2] and rig.site.alloc["cp3"] == 0.0
    rig.base_w = 29_000
    await rig.step()
    assert set(rig.site.alloc.values()) == {0.0}
    assert await rig.step() == []  # nothing changed: nothing written, nothing published


async def test_stale_meter_falls_back_to_safe_current_in_one_step_and_recovers():
    rig = Rig(safe_current=8, stale_after=12)
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    await rig.step()
    assert rig.site.alloc["cp1"] == 12.0
    await rig.step(dt=5, meter=False)  # 5 s old: still fresh
    ev = await rig.step(dt=10, meter=False)  # 15 s old: stale
    assert ev[0]["type"] == "site_failsafe" and "15 s old" in ev[0]["reason"]
    assert all(e.offered_a(rig.t) == 8.0 for e in rig.evse.values())
    ev = await rig.step()
    assert ev[0]["type"] == "site_recovered" and rig.site.alloc["cp1"] == 12.0
    ev = await rig.step(quality=int(Quality.STALE))
    assert ev[0]["type"] == "site_failsafe" and "flagged stale" in ev[0]["reason"]


async def test_user_limit_stop_start_and_boost_through_the_site():
    rig = Rig(tou={"enabled": True, "peak_max_kw": 0}, tariff=all_day("peak"))
    rig.evse["cp1"].plug(Car(need_wh=50_000), 0)
    rig.evse["cp2"].plug(Car(need_wh=50_000), 0)
    await rig.step()
    assert rig.site.alloc["cp1"] == 0.0  # peak hour, no boost: paused
    out = await rig.site.command("cp1", Action.BOOST, 30, USER)
    assert out["boost_until"] == rig.ms() + 30 * 60_000
    await rig.step()
    assert rig.site.alloc["cp1"] == 32.0 and rig.site.alloc["cp2"] == 0.0
    await rig.site.command("cp1", Action.SET_CURRENT_LIMIT, 10, USER)
    assert rig.evse["cp1"].offered_a(rig.t) == 10.0  # lowered at once, not at the next step
    await rig.step()
    assert rig.site.alloc["cp1"] == 10.0
    await rig.site.command("cp1", Action.STOP, None, USER)
    assert not rig.evse["cp1"].enabled
    await rig.step()
    assert rig.site.alloc["cp1"] == 0.0
    await rig.site.command("cp1", Action.START, None, USER)
    await rig.step()
    assert rig.evse["cp1"].enabled and rig.site.alloc["cp1"] == 10.0
    await rig.step(dt=31 * 60)  # boost expired
    assert rig.site.alloc["cp1"] == 0.0


async def test_a_grid_reading_a_second_older_than_the_chargers_does_not_inflate_the_budget():
    # the meter's value is the site's power one step earlier, the chargers' readings are current: while
    # cars ramp up, grid - chargers would make the base load look small and the budget too large
    rig = Rig(n=3, ramp_up=4, meter_lag=1.0, car_ramp=5.0)
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    limit_w, worst, shown = 30_000, 0.0, rig.base_w
    grid = np.asarray([rig.table.id("grid", "power")], np.int32)
    for _ in range(60):
        rig.t += 1.0
        physical = rig.base_w + sum(e.power_w(rig.t) for e in rig.evse.values())
        rig.publish()  # the chargers as they are now; the meter shows the previous second
        rig.latest.update(grid, np.array([rig.ms()], np.int64), np.array([shown]), np.zeros(1, np.uint32))
        shown = physical
        await rig.site.step(rig.ms())
        worst = max(worst, rig.base_w + sum(e.power_w(rig.t) for e in rig.evse.values()))
    assert worst <= limit_w, f"the site drew {worst:.0f} W against a {limit_w} W limit"
    assert sum(rig.site.alloc.values()) * 690 >= 0.9 * (limit_w - rig.base_w)  # and the room gets used


async def test_a_charger_that_misses_its_polls_is_not_taken_for_unplugged():
    # a charger whose polls time out gets stale gap markers (NaN, flagged STALE, stamped now): that
    # says nothing of its car, so its share is held (not written to 0) and its session goes on
    rig = Rig(n=2)
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    await rig.step()
    held, since = rig.site.alloc["cp1"], rig.site.sessions.plugged_at["cp1"]
    assert held > 0
    idx = rig.table.index("cp1")
    sids = np.asarray(sorted(idx.values()), np.int32)
    for _ in range(3):
        rig.t += 5.0
        rig.publish()
        n = len(sids)
        rig.latest.update(sids, np.full(n, rig.ms(), np.int64), np.full(n, np.nan),
                          np.full(n, int(Quality.STALE), np.uint32))
        events = await rig.site.step(rig.ms())
        assert rig.site.alloc["cp1"] == held and rig.evse["cp1"].offered_a(rig.t) == held, events
    assert rig.site.sessions.plugged_at["cp1"] == since  # the same session, not a new one
    await rig.step()  # its polls answer again
    assert rig.site.alloc["cp1"] == held


async def test_car_taking_less_releases_its_share():
    rig = Rig(n=2)
    rig.evse["cp1"].plug(Car(need_wh=50_000, max_a=6), 0)
    rig.evse["cp2"].plug(Car(need_wh=50_000, max_a=32), 0)
    await rig.step()
    assert rig.site.alloc == {"cp1": 18.1, "cp2": 18.1}
    await rig.step()
    await rig.step()
    assert rig.site.alloc["cp1"] <= 8 and rig.site.alloc["cp2"] >= 28


SITE = {"grid_meter": {"device": "grid"}, "chargers": [f"cp{i}" for i in range(1, 7)], "limit_kw": 80}


@pytest.mark.parametrize("seed", [3, 11])
async def test_site_limit_holds_on_every_step_of_a_random_day(seed):
    over = []

    def check(t, base, charging, _c):
        if charging > max(0.0, 80_000 - base) + 1e-6:
            over.append((t, base, charging))

    res = await run_day(SiteConfig.model_validate(SITE), seed=seed, on_step=check)
    assert over == []
    assert res.steps_over_limit == 0 and res.energy_kwh > 200
    fast = await run_day(None, seed=seed, limit_w=80_000)
    assert fast.steps_over_limit > 0  # without management this site would trip


async def test_fail_safe_over_a_meter_outage_in_a_day():
    res = await run_day(SiteConfig.model_validate({**SITE, "safe_current": 6}), seed=5,
                        meter_outage=(10 * 3600, 11 * 3600))
    events = [e for e in res.events if e["type"] in ("site_failsafe", "site_recovered")]
    assert [e["type"] for e in events] == ["site_failsafe", "site_recovered"]
    # the last reading is 60 s old at the first step of the outage (stale_after 15 s): fall back right there
    assert (events[0]["ts"] - DAY_START_MS) / 1000 == 10 * 3600
    assert (events[1]["ts"] - DAY_START_MS) / 1000 == 11 * 3600
    fs = [e for e in res.events if e["type"] == "site_allocation" and e.get("mode") == "failsafe"]
    assert fs and all(a in (0.0, 6.0) for a in fs[0]["allocations"].values())


async def test_valley_preference_is_measurable():
    tou = await run_day(SiteConfig.model_validate({**SITE, "tou": {"peak_max_kw": 11}}), seed=7)
    plain = await run_day(SiteConfig.model_validate({**SITE, "tou": {"enabled": False}}), seed=7)
    assert tou.valley_share > plain.valley_share + 0.05
    assert tou.peak_kwh < plain.peak_kwh * 0.7
    assert tou.cost / tou.energy_kwh < plain.cost / plain.energy_kwh


def all_day(period: str) -> Tariff:
    return Tariff(TariffConfig(prices={period: 1.0}, weekday=({"start": "00:00", "end": "24:00", "period": period},)))


USER = Writer.command("user-1")


def test_site_config_errors_and_the_one_tariff():
    with pytest.raises(ValueError, match=r"windows, prices cannot be set here: the agent has one tariff, configured in \[processing.tariff\]"):
        SiteConfig.model_validate({**SITE, "tou": {"windows": [{"start": 0, "end": 24, "period": "peak"}],
                                                   "prices": {"peak": 1.0}}})
    with pytest.raises(ValueError, match="exactly one of limit_kw or limit_a"):
        SiteConfig.model_validate({**SITE, "limit_a": 100})
    with pytest.raises(ValueError, match="grid meter cannot be one of the chargers"):
        SiteConfig.model_validate({**SITE, "grid_meter": {"device": "cp1"}})
    assert SiteConfig.model_validate({**SITE, "limit_kw": None, "limit_a": 100}).limit_w == 100 * 230 * 3


# ------------------------------------------------------------------------------------ one door
async def test_site_writes_go_through_the_gate_bounded_and_audited():
    audit: list[dict] = []
    rig = Rig(safe_current=20, stale_after=12, audit=audit.append, bounds={"cp1": (10.0, 16.0)})
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    await rig.step()  # 25 kW / 3 = 12 A each, inside cp1's declared [10, 16] A
    assert rig.site.alloc == {"cp1": 12.0, "cp2": 12.0, "cp3": 12.0}
    assert sorted(r["device"] for r in audit) == ["cp1", "cp2", "cp3"]
    assert all(r["kind"] == "write" and r["by"] == "site" and r["point"] == "current_limit"
               and r["status"] == "accepted" and r["applied"] == 12.0 for r in audit)
    audit.clear()
    rig.base_w = 20_000  # 14.5 A left: 7.2 A for cp1 is below its declared minimum, so it is paused
    await rig.step()
    cp1 = next(r for r in audit if r["device"] == "cp1")
    assert cp1["value"] == 7.2 and cp1["clamped_to"] == 0.0 and rig.evse["cp1"].offered_a(rig.t) == 0.0
    audit.clear()
    ev = await rig.step(dt=15, meter=False)  # stale meter: 20 A safe current, but cp1 may have 16 A at most
    assert ev[0]["type"] == "site_failsafe"
    cp1 = next(r for r in audit if r["device"] == "cp1")
    assert cp1["value"] == 20.0 and cp1["clamped_to"] == 16.0 and cp1["applied"] == 16.0
    assert rig.evse["cp1"].offered_a(rig.t) == 16.0 and rig.evse["cp2"].offered_a(rig.t) == 20.0


async def test_site_never_writes_a_point_not_declared_writable():
    audit: list[dict] = []
    rig = Rig(n=2, audit=audit.append)
    configs = {"cp1": model_charger_config("cp1"),
               "cp2": model_charger_config("cp2").model_copy(update={"writable": ()})}
    rig.site.gate = WriteGate(configs, rig.drivers, rig, audit=audit.append)
    for x in rig.names:
        rig.evse[x].plug(Car(need_wh=50_000), 0)
    rig.evse["cp2"].set_limit(6.0, 0)
    ev = await rig.step()
    failed = [e for e in ev if e["type"] == "site_write_failed"]
    assert [e["device"] for e in failed] == ["cp2"] and "not declared writable" in failed[0]["reason"]
    refused = next(r for r in audit if r["device"] == "cp2")
    assert refused["status"] == "refused" and refused["code"] == "not_writable" and refused["by"] == "site"
    assert rig.evse["cp2"].limit_a == 6.0  # untouched


async def test_commands_for_a_site_charger_are_audited_as_writes_by_that_command():
    audit: list[dict] = []
    rig = Rig(n=1, audit=audit.append)
    rig.evse["cp1"].plug(Car(need_wh=50_000), 0)
    await rig.step()
    audit.clear()
    await rig.site.command("cp1", Action.STOP, None, Writer.command("stop-7"))
    assert audit == [{"kind": "write", "ts": rig.ms(), "device": "cp1", "point": "stop", "by": "command",
                      "command_id": "stop-7", "status": "accepted", "applied": True}]


# ------------------------------------------------------------------------------------ the assembled agent
def site_agent_config(tmp_path, *, port: int, broker=None, tou: str = "") -> str:
    mqtt = f'host = "{broker.host}"\nport = {broker.port}' if broker is not None else 'host = "127.0.0.1"'
    return f'''
[gateway]
id = "gw-site"
state_dir = "{tmp_path / 'state'}"
[mqtt]
{mqtt}
[lines.lan]
type = "modbus_tcp"
host = "127.0.0.1"
port = {port}
[[devices]]
name = "load"
type = "replay"
file = "{SAMPLES / 'building_load_kw.csv'}"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 0.2
energy = {{ metric = "power" }}
[[devices]]
name = "cp1"
type = "modbus_charger"
profile = "charx"
line = "lan"
poll_interval = 0.2
writable = ["current_limit"]
current_limit_bounds = [6, 16]
[site]
chargers = ["cp1"]
limit_kw = 1000
{tou}
[site.grid_meter]
device = "load"
metric = "power"
scale = 1000
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_site_writes_reach_the_audit_topic_within_declared_bounds(tmp_path, mosquitto, mqtt_subscriber):
    port = free_port()
    sim = await charger_sim(profile="charx", tcp=f"127.0.0.1:{port}")
    next(iter(sim.sims.values())).plug(Car(need_wh=50_000, max_a=32))
    sub = mqtt_subscriber(mosquitto, "edge/gw-site/audit")
    text = site_agent_config(tmp_path, port=port, broker=mosquitto, tou="tou = { enabled = false }")
    agent = Agent(load_config_text(text))
    task = asyncio.create_task(agent.run())
    try:  # the site ramps the car up 4 A a step to cp1's declared maximum, 16 A (the site would give 32 A)
        got = await asyncio.to_thread(sub.wait_for, 1, 60, predicate=lambda m: m.json().get("applied") == 16.0)
        audits = [m.json() for m in sub.snapshot()]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await sim.stop()
    assert got[0].json()["by"] == "site" and got[0].json()["device"] == "cp1"
    writes = [a for a in audits if a["kind"] == "write"]
    assert writes and all(a["by"] == "site" and a["point"] == "current_limit" and a["status"] == "accepted"
                          and 0 <= a["applied"] <= 16 for a in writes)


def test_energy_is_billed_and_charging_capped_by_the_same_tariff_every_hour(tmp_path):
    agent = Agent(load_config_text(site_agent_config(tmp_path, port=free_port(), tou="tou = { peak_max_kw = 0 }")))
    try:
        ledger, site = agent.processor.ledger, agent.site
        assert site is not None and ledger.meters == ["load"]
        assert site.plan_tariff is ledger.tariff and site.carbon is ledger.carbon  # configured once, shared
        day = ledger.tariff.local_day_start(1_700_000_000_000)
        periods = []
        for h in range(24):
            ts = day + h * 3_600_000 + 1_800_000
            ledger.add(np.array([0]), np.array([ts], np.int64), np.array([1.0]))
            (billed,) = ledger.hours[0][ts // 3_600_000 * 3_600_000].by_period
            sids = [agent.series.id("load", "power"), agent.series.id("cp1", "state"), agent.series.id("cp1", "power")]
            agent.latest.update(np.asarray(sids, np.int32), np.full(3, ts, np.int64), np.array([5.0, 3.0, 0.0]),
                                np.zeros(3, np.uint32))
            alloc, info = site.targets(ts)
            assert info["period"] == billed, f"hour {h}: billed as {billed}, charged as {info['period']}"
            assert (alloc["cp1"] == 0.0) == (billed == "peak"), f"hour {h}"
            periods.append(billed)
        assert {"peak", "flat", "valley"} <= set(periods)  # the check covered every kind of hour
    finally:
        agent.commands.close()
        agent.outbox.close()
