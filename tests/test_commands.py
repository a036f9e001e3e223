"""Command path: every acceptance and refusal, idempotency across restarts, auth, rate limit, garbage."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands import CommandRouter, CommandsConfig, IdStore, sign
from agent.commands.parse import Action
from agent.errors import DeviceTimeout
from drivers.charger_common import ChargerConfig, ChargerDriver


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.t

    def monotonic(self) -> float:
        return self.t / 1000


class RecordingCharger(ChargerDriver):
    """The narrow boundary the write gate talks to: records writes, can be told to fail or hang."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, object]] = []
        self.fail: Exception | None = None
        self.hang = False

    async def _record(self, point: str, value: object) -> None:
        if self.hang:
            await asyncio.sleep(30)
        if self.fail:
            raise self.fail
        self.writes.append((point, value))

    async def set_current_limit(self, amps: float) -> float:
        await self._record("current_limit", amps)
        return amps

    async def start(self) -> bool:
        await self._record("start", True)
        return True

    async def stop(self) -> bool:
        await self._record("stop", True)
        return True


def charger_cfg(name="cp1", **kw):
    base = dict(name=name, type="test_charger", writable=["current_limit", "start", "stop"])
    base.update(kw)
    return ChargerConfig.model_validate(base)


def make(tmp_path, *, cfg=None, devices=None, **ckw):
    drv = RecordingCharger()
    devices = devices or {"cp1": charger_cfg()}
    clock = FakeClock()
    router = CommandRouter(
        CommandsConfig.model_validate(ckw),
        devices=devices,
        drivers={n: drv for n in devices},
        ids=IdStore(tmp_path / "commands.db", limit=ckw.get("remember_ids", 10_000)),
        clock=clock,
    )
    return router, drv, clock


def cmd(**kw) -> bytes:
    return orjson.dumps(kw)


async def test_set_current_limit_accepted_writes_and_audits(tmp_path):
    router, drv, _ = make(tmp_path)
    out = await router.handle("cp1", cmd(id="c1", action="set_current_limit", value=16))
    assert out.status == "accepted"
    assert out.result["id"] == "c1" and out.result["applied"] == 16
    assert drv.writes == [("current_limit", 16.0)]
    assert out.audit["kind"] == "command" and out.audit["status"] == "accepted" and out.audit["device"] == "cp1"
    assert len(out.audit["payload_sha256"]) == 16
    orjson.dumps(out.result), orjson.dumps(out.audit)


async def test_start_and_stop(tmp_path):
    router, drv, _ = make(tmp_path)
    assert (await router.handle("cp1", cmd(id="a", action="start"))).status == "accepted"
    assert (await router.handle("cp1", cmd(id="b", action="stop"))).status == "accepted"
    assert drv.writes == [("start", True), ("stop", True)]


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"{not json", "malformed", "not valid JSON"),
        (b"[1,2]", "malformed", "JSON object"),
        (b"", "malformed", "not valid JSON"),
        (cmd(action="start"), "malformed", '"id"'),
        (cmd(id="has space", action="start"), "malformed", '"id"'),
        (cmd(id=7, action="start"), "malformed", '"id"'),
        (cmd(id="x1", action="start", extra=1), "malformed", "unknown keys: extra"),
        (cmd(id="x2", action=5), "malformed", '"action"'),
        (cmd(id="x3", action="set_current_limit"), "malformed", "finite number"),
        (cmd(id="x4", action="set_current_limit", value="16"), "malformed", "finite number"),
        (cmd(id="x5", action="set_current_limit", value=True), "malformed", "finite number"),
        (cmd(id="x6", action="start", value=3), "malformed", "takes no"),
        (cmd(id="x7", action="start", ts=-5), "malformed", '"ts"'),
        (cmd(id="x8", action="explode"), "unknown_action", "unknown action 'explode'"),
        (cmd(id="x9", action="set_current_limit", value=5.9), "out_of_range", "outside [6, 32]"),
        (cmd(id="x10", action="set_current_limit", value=33), "out_of_range", "outside [6, 32]"),
        (cmd(id="x11", action="set_current_limit", value=-1), "out_of_range", "outside"),
        (cmd(id="x12", action="boost", value=30), "not_writable", "'boost' is not declared writable"),
        (b"x" * 5000, "malformed", "limit 4096"),
    ],
)
async def test_refusals_change_nothing(tmp_path, payload, code, words):
    router, drv, _ = make(tmp_path)
    out = await router.handle("cp1", payload)
    assert out.status == "refused", out.result
    assert out.result["code"] == code
    assert words in out.result["reason"]
    assert drv.writes == []
    assert out.audit["status"] == "refused" and out.audit["code"] == code


async def test_unknown_device_and_undeclared_point(tmp_path):
    devices = {"cp1": charger_cfg(), "ro": charger_cfg("ro", writable=["start"])}
    router, drv, _ = make(tmp_path, devices=devices)
    out = await router.handle("nope", cmd(id="u1", action="start"))
    assert out.result["code"] == "unknown_device" and "'nope'" in out.result["reason"]
    out = await router.handle("ro", cmd(id="u2", action="set_current_limit", value=10))
    assert out.result["code"] == "not_writable"
    assert (await router.handle("ro", cmd(id="u3", action="stop"))).result["code"] == "not_writable"
    assert drv.writes == []


async def test_per_device_bounds(tmp_path):
    devices = {"cp1": charger_cfg(current_limit_bounds=[8, 16])}
    router, drv, _ = make(tmp_path, devices=devices)
    assert (await router.handle("cp1", cmd(id="b1", action="set_current_limit", value=20))).result["code"] == "out_of_range"
    assert (await router.handle("cp1", cmd(id="b2", action="set_current_limit", value=16))).status == "accepted"
    assert drv.writes == [("current_limit", 16.0)]


async def test_replay_returns_original_and_changes_nothing_even_after_restart(tmp_path):
    router, drv, _ = make(tmp_path)
    first = await router.handle("cp1", cmd(id="r1", action="set_current_limit", value=10))
    again = await router.handle("cp1", cmd(id="r1", action="set_current_limit", value=10))
    assert again.status == "refused" and again.result["code"] == "duplicate"
    assert again.result["original"] == first.result
    router.close()
    router2, drv2, _ = make(tmp_path)  # same state dir: a new process
    third = await router2.handle("cp1", cmd(id="r1", action="set_current_limit", value=20))
    assert third.result["code"] == "duplicate" and third.result["original"]["value"] == 10
    assert drv.writes == [("current_limit", 10.0)] and drv2.writes == []
    # a refused command's id is remembered too: retrying it with a different body is still a replay
    await router2.handle("cp1", cmd(id="r2", action="set_current_limit", value=99))
    out = await router2.handle("cp1", cmd(id="r2", action="set_current_limit", value=12))
    assert out.result["code"] == "duplicate" and out.result["original"]["code"] == "out_of_range"
    assert drv2.writes == []


async def test_concurrent_duplicates_execute_once(tmp_path):
    router, drv, _ = make(tmp_path)
    outs = await asyncio.gather(*[router.handle("cp1", cmd(id="same", action="start")) for _ in range(5)])
    assert sorted(o.status for o in outs) == ["accepted"] + ["refused"] * 4
    assert drv.writes == [("start", True)]


async def test_id_memory_is_bounded(tmp_path):
    router, drv, _ = make(tmp_path, remember_ids=16, rate_limit=1000)
    for i in range(40):
        await router.handle("cp1", cmd(id=f"n{i}", action="start"))
    assert len(router.ids) == 16
    assert (await router.handle("cp1", cmd(id="n39", action="start"))).result["code"] == "duplicate"
    assert (await router.handle("cp1", cmd(id="n0", action="start"))).status == "accepted"  # forgotten


async def test_unusable_state_dir_refuses_commands_until_it_recovers(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    router, drv, _ = make(blocker)
    out = await router.handle("cp1", cmd(id="m1", action="start"))
    assert out.status == "refused" and out.result["code"] == "cannot_record"
    assert "cannot be written" in out.result["reason"] and "nothing was changed" in out.result["reason"]
    assert out.audit["status"] == "refused" and drv.writes == []
    blocker.unlink()  # the technician fixes the state directory: no restart needed
    assert (await router.handle("cp1", cmd(id="m1", action="start"))).status == "accepted"
    assert drv.writes == [("start", True)]


async def test_rate_limit_per_device_and_window(tmp_path):
    devices = {"cp1": charger_cfg(), "cp2": charger_cfg("cp2")}
    router, drv, clock = make(tmp_path, devices=devices, rate_limit=3, rate_window=60)
    res = [await router.handle("cp1", cmd(id=f"q{i}", action="start")) for i in range(4)]
    assert [r.status for r in res] == ["accepted"] * 3 + ["refused"]
    assert res[3].result["code"] == "rate_limited" and "3 commands in 60 s" in res[3].result["reason"]
    assert (await router.handle("cp2", cmd(id="other", action="start"))).status == "accepted"
    clock.t += 61_000
    assert (await router.handle("cp1", cmd(id="q9", action="start"))).status == "accepted"
    assert len(drv.writes) == 5


async def test_shared_secret(tmp_path):
    router, drv, _ = make(tmp_path, auth="shared_secret", secret="s3cret")
    out = await router.handle("cp1", cmd(id="t1", action="start"))
    assert out.result["code"] == "unauthorised" and out.result["reason"] == "missing token"
    out = await router.handle("cp1", cmd(id="t2", action="start", token="guess"))
    assert out.result["code"] == "unauthorised" and out.audit["auth"] == "failed"
    out = await router.handle("cp1", cmd(id="t2", action="start", token="s3cret"))  # id not burnt by the failure
    assert out.status == "accepted" and out.audit["auth"] == "ok"
    assert drv.writes == [("start", True)]


async def test_hmac(tmp_path):
    router, drv, clock = make(tmp_path, auth="hmac", secret="k", max_age=30)
    tok = sign("k", "cp1", "h1", "set_current_limit", 16, clock.t)
    tampered = await router.handle("cp1", cmd(id="h1", action="set_current_limit", value=32, ts=clock.t, token=tok))
    assert tampered.result["code"] == "unauthorised"
    other_dev = await router.handle("cp2", cmd(id="h1", action="set_current_limit", value=16, ts=clock.t, token=tok))
    assert other_dev.result["code"] == "unauthorised"
    ok = await router.handle("cp1", cmd(id="h1", action="set_current_limit", value=16, ts=clock.t, token=tok.upper()))
    assert ok.status == "accepted"
    old_ts = clock.t - 60_000
    tok2 = sign("k", "cp1", "h2", "stop", None, old_ts)
    out = await router.handle("cp1", cmd(id="h2", action="stop", ts=old_ts, token=tok2))
    assert out.result["code"] == "expired"
    assert drv.writes == [("current_limit", 16.0)]


async def test_timestamps_bounded_both_ways_with_max_age(tmp_path):
    router, drv, clock = make(tmp_path, max_age=60)
    ten_days = 10 * 86_400_000
    future = await router.handle("cp1", cmd(id="s1", action="set_current_limit", value=16, ts=clock.t + ten_days))
    assert future.status == "refused" and future.result["code"] == "clock_skew"
    assert "864000 s ahead" in future.result["reason"] and "max_clock_skew 30 s" in future.result["reason"]
    old = await router.handle("cp1", cmd(id="s2", action="set_current_limit", value=16, ts=clock.t - ten_days))
    assert old.result["code"] == "expired"
    undated = await router.handle("cp1", cmd(id="s3", action="set_current_limit", value=16))
    assert undated.result["code"] == "expired" and '"ts" is required' in undated.result["reason"]
    assert drv.writes == []
    slightly_ahead = await router.handle("cp1", cmd(id="s4", action="set_current_limit", value=16, ts=clock.t + 5_000))
    assert slightly_ahead.status == "accepted" and drv.writes == [("current_limit", 16.0)]


async def test_retained_command_is_refused_and_its_id_stays_usable(tmp_path):
    router, drv, _ = make(tmp_path)
    out = await router.handle("cp1", cmd(id="k1", action="start"), retained=True)
    assert out.status == "refused" and out.result["code"] == "retained" and out.audit["code"] == "retained"
    assert drv.writes == []
    assert (await router.handle("cp1", cmd(id="k1", action="start"))).status == "accepted"  # sent again, live


def test_auth_config_needs_secret():
    with pytest.raises(ValueError, match="needs a non-empty secret"):
        CommandsConfig.model_validate({"auth": "hmac"})


async def test_disabled(tmp_path):
    router, drv, _ = make(tmp_path, enabled=False)
    out = await router.handle("cp1", cmd(id="d1", action="start"))
    assert out.result["code"] == "disabled" and drv.writes == []


async def test_device_failure_and_timeout_are_failed(tmp_path):
    router, drv, _ = make(tmp_path, write_timeout=0.2)
    drv.fail = DeviceTimeout("no answer from unit 255")
    out = await router.handle("cp1", cmd(id="f1", action="start"))
    assert out.status == "failed" and "no answer from unit 255" in out.result["reason"]
    drv.fail = None
    drv.hang = True
    out = await router.handle("cp1", cmd(id="f2", action="stop"))
    assert out.status == "failed" and "within 0.2 s" in out.result["reason"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=8,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10) | st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "action": st.sampled_from(["start", "stop", "set_current_limit", "boost", "x"]) | json_values,
        "value": json_values,
        "ts": json_values,
        "token": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | bodies.map(orjson.dumps) | json_values.map(orjson.dumps))
async def test_garbage_never_crashes_and_writes_only_when_accepted(tmp_path, payload):
    router, drv, _ = make(tmp_path / "h", rate_limit=10_000)
    try:
        out = await router.handle("cp1", payload)
    finally:
        router.close()
    assert out.status in ("accepted", "refused", "failed")
    orjson.dumps(out.result)
    orjson.dumps(out.audit)
    if out.status != "accepted":
        assert drv.writes == [] and out.result["reason"]
    else:
        assert len(drv.writes) == 1
        point, value = drv.writes[0]
        assert point in ("start", "stop") or 6 <= value <= 32


async def test_every_device_write_of_a_command_is_audited_by_the_write_gate(tmp_path):
    from agent.commands import WriteGate

    audit: list[dict] = []
    devices = {"cp1": charger_cfg(current_limit_bounds=[6, 16])}
    drv = RecordingCharger()
    clock = FakeClock()
    gate = WriteGate(devices, {"cp1": drv}, clock, audit=audit.append)
    router = CommandRouter(CommandsConfig(), devices=devices, drivers={"cp1": drv},
                           ids=IdStore(tmp_path / "commands.db", limit=100), clock=clock, gate=gate)
    assert (await router.handle("cp1", cmd(id="w1", action="set_current_limit", value=12))).status == "accepted"
    assert (await router.handle("cp1", cmd(id="w2", action="set_current_limit", value=20))).result["code"] == "out_of_range"
    drv.fail = DeviceTimeout("no answer from unit 255")
    assert (await router.handle("cp1", cmd(id="w3", action="stop"))).status == "failed"
    assert [(r["kind"], r["by"], r["command_id"], r["point"], r["status"]) for r in audit] == [
        ("write", "command", "w1", "current_limit", "accepted"),
        ("write", "command", "w3", "stop", "failed"),
    ]  # w2 was refused before any write was attempted: its command audit record says so
    assert audit[0]["applied"] == 12.0 and "no answer from unit 255" in audit[1]["reason"]
    router.close()


async def test_write_gate_guards_a_device_against_a_runaway_writer(tmp_path):
    from agent.commands import SITE, Refusal, WriteGate
    from agent.commands.gate import WRITE_LIMIT

    audit: list[dict] = []
    drv = RecordingCharger()
    clock = FakeClock()
    gate = WriteGate({"cp1": charger_cfg()}, {"cp1": drv}, clock, audit=audit.append)
    for i in range(WRITE_LIMIT):
        await gate.write("cp1", Action.SET_CURRENT_LIMIT.point, 6.0 + i % 2, by=SITE)
    with pytest.raises(Refusal) as refused:
        await gate.write("cp1", Action.SET_CURRENT_LIMIT.point, 8.0, by=SITE)
    assert refused.value.code.value == "rate_limited" and len(drv.writes) == WRITE_LIMIT
    assert audit[-1]["status"] == "refused" and audit[-1]["code"] == "rate_limited"
    clock.t += 61_000
    assert await gate.write("cp1", Action.SET_CURRENT_LIMIT.point, 8.0, by=SITE) == 8.0


async def test_the_generic_write_reaches_any_declared_point_and_aliases_are_the_same_write(tmp_path):
    router, drv, _ = make(tmp_path)
    out = await router.handle("cp1", cmd(id="w1", action="write", point="current_limit", value=16))
    assert out.status == "accepted" and out.result["applied"] == 16 and out.result["point"] == "current_limit"
    assert (await router.handle("cp1", cmd(id="w2", action="write", point="stop"))).status == "accepted"
    assert drv.writes == [("current_limit", 16.0), ("stop", True)]
    for cid, body, code, words in [
        ("w3", dict(action="write", value=16), "malformed", '"point"'),
        ("w4", dict(action="write", point="boost", value=5), "not_writable", "'boost' is not declared writable"),
        ("w5", dict(action="write", point="nope", value=1), "not_writable", "'nope' is not declared writable"),
        ("w6", dict(action="write", point="stop", value=1), "malformed", "takes no"),
        ("w7", dict(action="write", point="current_limit", value=40), "out_of_range", "outside [6, 32] A"),
        ("w8", dict(action="set_interval", value=500), "unknown_action",
         "known for this device: write, boost, set_current_limit, start, stop"),
        ("w9", dict(action="start", point="stop"), "malformed", "use action 'write'"),
    ]:
        out = await router.handle("cp1", cmd(id=cid, **body))
        assert out.result["code"] == code and words in out.result["reason"], out.result
    assert len(drv.writes) == 2


async def test_hmac_signs_the_point_of_a_write(tmp_path):
    router, drv, clock = make(tmp_path, auth="hmac", secret="k")
    forged = sign("k", "cp1", "h1", "write", None, None, point="start")  # signed for start, sent as stop
    out = await router.handle("cp1", cmd(id="h1", action="write", point="stop", token=forged))
    assert out.result["code"] == "unauthorised"
    ok = sign("k", "cp1", "h2", "write", None, None, point="stop")
    assert (await router.handle("cp1", cmd(id="h2", action="write", point="stop", token=ok))).status == "accepted"
    assert drv.writes == [("stop", True)]
