"""The set_session command: a per-session override reaches the site planner through the command path
(validated, authorised, recorded once, answered), writes nothing to the charger, and is refused for a
charger the site does not manage."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import orjson
import pytest

from agent.commands import CommandRouter, CommandsConfig, IdStore, sign
from drivers.charger_common import Car, EvseModel
from tests.site_day import ModelCharger, model_charger_config
from tests.test_planner import H, Rig

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")  # the planner tariff's zone (processing.timezone default)


def setup(tmp_path, *, site=True, **ckw):
    """A planner rig (cp1, cp2 under [site]) plus cp9, a charger outside [site], behind one router."""
    rig = Rig()
    outsider = EvseModel()
    drivers = {**rig.drivers, "cp9": ModelCharger(outsider, lambda: rig.t)}
    devices = {n: model_charger_config(n) for n in drivers}
    router = CommandRouter(CommandsConfig.model_validate(ckw), devices=devices, drivers=drivers,
                           ids=IdStore(tmp_path / "commands.db", limit=1000), clock=rig, site=rig.site if site else None)
    return rig, router, outsider


def cmd(**kw) -> bytes:
    return orjson.dumps(kw)


def next_local(rig: Rig, hh: int, mm: int) -> int:
    now = dt.datetime.fromtimestamp(rig.now_ms() / 1000, SHANGHAI)
    t = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if t <= now:
        t += dt.timedelta(days=1)
    return int(t.timestamp() * 1000)


async def test_override_reaches_the_planner_and_the_next_step_plans_for_it(tmp_path):
    rig, router, _ = setup(tmp_path)
    rig.evse["cp1"].plug(Car(need_wh=60_000), rig.t)
    limit_before = rig.evse["cp1"].limit_a
    local = dt.datetime.fromtimestamp(rig.now_ms() / 1000, SHANGHAI) + dt.timedelta(minutes=75)
    hhmm = f"{local.hour:02d}:{local.minute:02d}"
    out = await router.handle("cp1", cmd(id="taxi-1", action="set_session", departure=hhmm, energy_kwh=40,
                                         max_current_a=16))
    assert out.status == "accepted", out.result
    departure = next_local(rig, local.hour, local.minute)
    assert out.result["departure"] == departure and out.result["energy_kwh"] == 40
    assert out.audit["kind"] == "command" and out.audit["status"] == "accepted" and out.audit["action"] == "set_session"
    assert rig.evse["cp1"].limit_a == limit_before  # the command itself wrote nothing to the charger
    book = rig.site.sessions
    assert book.departure_ms("cp1", rig.now_ms()) == departure and book.need_kwh("cp1") == 40
    assert book.car_max_a["cp1"] == 16

    ev = await rig.step()
    # 16 A x 690 W/A = 11 kW for ~1 h 15 min cannot give 40 kWh: the plan says so at once, and plans the
    # car's maximum current until it leaves
    short = [e for e in ev if e["type"] == "site_shortfall"]
    assert [(e["device"], e["need_kwh"], e["departure"]) for e in short] == [("cp1", 40, departure)]
    plan = rig.site.last_plan
    assert plan is not None and plan.amps["cp1"].max() == pytest.approx(16.0)
    assert rig.site.alloc["cp1"] >= 16.0

    again = await router.handle("cp1", cmd(id="taxi-1", action="set_session", departure="23:00", energy_kwh=5))
    assert again.result["code"] == "duplicate" and again.result["original"]["status"] == "accepted"
    assert book.need_kwh("cp1") == 40  # at most once: the re-sent id changed nothing


async def test_epoch_departure_and_a_feasible_session(tmp_path):
    rig, router, _ = setup(tmp_path)
    rig.evse["cp2"].plug(Car(need_wh=20_000), rig.t)
    departure = rig.now_ms() + 10 * H
    out = await router.handle("cp2", cmd(id="s2", action="set_session", departure=departure, energy_kwh=10.5))
    assert out.status == "accepted" and out.result["departure"] == departure
    assert out.result["max_current_a"] is None
    ev = await rig.step()
    assert not [e for e in ev if e["type"] == "site_shortfall"]
    assert rig.site.last_plan is not None and "cp2" in rig.site.last_plan.amps
    assert rig.site.sessions.session("cp2", 0.0, 32, (0, 1, 2), 230.0, rig.now_ms()).need_wh == 10_500


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"energy_kwh": 40}, "malformed", '"departure" must be a local time "HH:MM" or epoch milliseconds'),
        ({"departure": "2:30", "energy_kwh": 40}, "malformed", '"departure" must be'),
        ({"departure": "tomorrow", "energy_kwh": 40}, "malformed", '"departure" must be'),
        ({"departure": True, "energy_kwh": 40}, "malformed", '"departure" must be'),
        ({"departure": 1.5e12, "energy_kwh": 40}, "malformed", '"departure" must be'),
        ({"departure": "24:00", "energy_kwh": 40}, "out_of_range", "not a time of day"),
        ({"departure": "12:60", "energy_kwh": 40}, "out_of_range", "not a time of day"),
        ({"departure": 1_699_999_000_000, "energy_kwh": 40}, "out_of_range", "in the past"),
        ({"departure": 1_700_000_000_000 + 8 * 24 * H, "energy_kwh": 40}, "out_of_range", "7 days ahead"),
        ({"departure": "14:30"}, "malformed", 'finite number in "energy_kwh"'),
        ({"departure": "14:30", "energy_kwh": "40"}, "malformed", 'finite number in "energy_kwh"'),
        ({"departure": "14:30", "energy_kwh": 0}, "out_of_range", '"energy_kwh" of 0 kWh is outside (0, 500]'),
        ({"departure": "14:30", "energy_kwh": 501}, "out_of_range", "outside (0, 500]"),
        ({"departure": "14:30", "energy_kwh": 40, "max_current_a": 0}, "out_of_range", '"max_current_a" of 0 A'),
        ({"departure": "14:30", "energy_kwh": 40, "max_current_a": 101}, "out_of_range", "outside (0, 100]"),
        ({"departure": "14:30", "energy_kwh": 40, "value": 3}, "malformed", "takes no"),
        ({"departure": "14:30", "energy_kwh": 40, "when": 3}, "malformed", "unknown keys: when"),
    ],
)
async def test_bad_values_are_refused_with_reasons_and_change_nothing(tmp_path, fields, code, words):
    rig, router, _ = setup(tmp_path)
    out = await router.handle("cp1", cmd(id="bad", action="set_session", **fields))
    assert out.status == "refused" and out.result["code"] == code, out.result
    assert words in out.result["reason"]
    assert out.audit["status"] == "refused"
    assert rig.site.sessions.overrides == {} and rig.site.sessions.car_max_a == {}


async def test_session_fields_belong_to_set_session_only(tmp_path):
    _, router, _ = setup(tmp_path)
    out = await router.handle("cp1", cmd(id="st", action="start", energy_kwh=40))
    assert out.result["code"] == "malformed" and "unknown keys: energy_kwh" in out.result["reason"]


@pytest.mark.parametrize("site", [True, False])
async def test_a_charger_outside_the_site_is_refused(tmp_path, site):
    rig, router, outsider = setup(tmp_path, site=site)
    out = await router.handle("cp9", cmd(id="o1", action="set_session", departure="14:30", energy_kwh=40))
    assert out.status == "refused" and out.result["code"] == "not_writable"
    assert "set_session needs site load management ([site] chargers) to manage 'cp9'" in out.result["reason"]
    assert "cp9" not in rig.site.sessions.overrides and outsider.limit_a == EvseModel().limit_a


async def test_hmac_signs_the_session_fields(tmp_path):
    rig, router, _ = setup(tmp_path, auth="hmac", secret="k")
    rig.evse["cp1"].plug(Car(need_wh=60_000), rig.t)
    fields = {"departure": "14:30", "energy_kwh": 40}
    tok = sign("k", "cp1", "h1", "set_session", session=fields)
    ok = await router.handle("cp1", cmd(id="h1", action="set_session", token=tok, **fields))
    assert ok.status == "accepted" and ok.audit["auth"] == "ok"
    tok2 = sign("k", "cp1", "h2", "set_session", session=fields)
    forged = await router.handle("cp1", cmd(id="h2", action="set_session", token=tok2, departure="14:30",
                                            energy_kwh=400))
    assert forged.result["code"] == "unauthorised" and forged.result["reason"] == "bad token"
    assert rig.site.sessions.need_kwh("cp1") == 40


async def test_a_session_charging_mode_holds_until_the_car_leaves(tmp_path):
    """With [site.solar], "mode" sets how this session charges: "pv" without surplus pauses it, "now"
    charges it; unplugged, the charger's configured mode ("off" here) is back. Without [site.solar] it is refused."""
    rig = Rig(solar={"default_mode": "off"})
    router = CommandRouter(CommandsConfig.model_validate({"auth": "hmac", "secret": "s3cret-s3cret"}),
                           devices={n: model_charger_config(n) for n in rig.drivers}, drivers=rig.drivers,
                           ids=IdStore(tmp_path / "commands.db", limit=1000), clock=rig, site=rig.site)
    rig.evse["cp1"].plug(Car(need_wh=60_000), rig.t)
    body = {"id": "m1", "action": "set_session", "departure": rig.now_ms() + 4 * H, "energy_kwh": 30, "mode": "pv"}
    out = await router.handle("cp1", cmd(**body, token=sign("s3cret-s3cret", "cp1", "m1", "set_session",
                                                           session={**body, "mode": "now"})))
    assert out.result["code"] == "unauthorised"  # the mode is signed: a changed mode fails the token
    out = await router.handle("cp1", cmd(**body, token=sign("s3cret-s3cret", "cp1", "m1", "set_session", session=body)))
    assert out.status == "accepted" and out.result["mode"] == "pv", out.result
    for _ in range(3):
        await rig.step()
    assert rig.site.alloc["cp1"] == 0  # PV only, and no sun on this site
    body = {**body, "id": "m2", "mode": "now"}
    await router.handle("cp1", cmd(**body, token=sign("s3cret-s3cret", "cp1", "m2", "set_session", session=body)))
    for _ in range(3):
        await rig.step()
    assert rig.site.alloc["cp1"] >= 6
    bad = {**body, "id": "m3", "mode": "solar"}
    out = await router.handle("cp1", cmd(**bad, token=sign("s3cret-s3cret", "cp1", "m3", "set_session", session=bad)))
    assert out.result["code"] == "malformed" and "\"mode\" must be one of" in out.result["reason"]
    rig.evse["cp1"].unplug(rig.t)
    await rig.step()
    assert rig.site.solar.mode("cp1").value == "off"  # the session's mode went with the car

    plain, router2, _ = setup(tmp_path / "plain")
    plain.evse["cp1"].plug(Car(need_wh=60_000), plain.t)
    out = await router2.handle("cp1", cmd(id="m4", action="set_session", departure="23:00", energy_kwh=5, mode="pv"))
    assert out.result["code"] == "not_writable" and "[site.solar]" in out.result["reason"]
