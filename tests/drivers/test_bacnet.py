"""BACnet/IP: the driver against a bacpypes3 device on loopback (the simulated AHU): reads, status
flags as quality, COV, writes at a priority through the write gate, broken config and devices;
AHU fault diagnosis on traces of a clean and a faulty AHU read through BACnet; scan and run --once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from agent.commands import CommandRouter, CommandsConfig, IdStore
from agent.contract import DeviceError, DeviceTimeout, ProtocolError, Quality
from agent.simkit.conformance import SimDevice, build_driver
from drivers.bacnet import SPEC
from drivers.bacnet.link import free_udp_port
from drivers.bacnet.sim import OBJECTS, AhuSim, start
from tests.driver_rig import opened as opened_driver

AHU_ROLES = {r: r for r in ("oat", "rat", "mat", "sat", "sat_sp", "damper", "cooling_valve", "heating_valve",
                            "fan_speed", "duct_static", "duct_static_sp")}


def objects(units: bool = True) -> dict[str, dict[str, Any]]:
    from drivers.bacnet.objects import unit_of
    return {name: {"object": f"{t},{i}", **({"unit": unit_of(u)} if units and u else {})}
            for name, (t, i, u, _) in OBJECTS.items()}


def device(sim: AhuSim, **extra: Any) -> SimDevice:
    return SimDevice(device={"type": "bacnet", "address": sim.address, "device_instance": sim.instance,
                             "local_address": f"127.0.0.1:{free_udp_port()}", "objects": objects(),
                             "request_timeout": 10, "timeout": 30, **extra}, lines={})


class SimClock:
    def __init__(self, sim: AhuSim):
        self.sim = sim

    def now_ms(self) -> int:
        return 1_767_225_600_000 + int(self.sim.model.t * 1000)

    def monotonic(self) -> float:
        return self.sim.model.t


def opened(tmp_path: Path, sim: AhuSim, **extra: Any):
    return opened_driver(SPEC, device(sim, **extra), tmp_path, prepare=lambda d: setattr(d, "clock", SimClock(sim)))


async def until(pred, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_reads_every_point_with_read_property_multiple(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim, cov=False, per_request=5) as driver:
            got = {s.metric: s for s in await driver.read()}
            assert set(got) == set(OBJECTS)
            for name, v in sim.model.values.items():
                assert got[name].value == pytest.approx(v, rel=1e-6, abs=1e-6), name
            assert all(s.quality == 0 for s in got.values())
            assert {m.name: m.unit for m in driver.metrics()}["duct_static"] == "Pa"
    finally:
        await sim.stop()


async def test_status_flags_become_quality_bits(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim, cov=False) as driver:
            sim.set_flags("sat", fault=True)
            sim.set_flags("oat", out_of_service=True)
            sim.set_flags("damper", overridden=True)
            q = {s.metric: s.quality for s in await driver.read()}
            assert q["sat"] == Quality.DEVICE_FLAGGED
            assert q["oat"] == Quality.OUT_OF_SERVICE
            assert q["damper"] == Quality.OVERRIDDEN
            assert q["rat"] == 0
    finally:
        await sim.stop()


async def test_cov_notifications_arrive_with_their_own_time_and_subscribed_objects_are_not_polled(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim, cov_lifetime=60) as driver:
            assert set(driver.cov) == set(OBJECTS)  # the device accepts every subscription
            await until(lambda: driver.heard >= {"sat", "oat"})
            await driver.read()
            t_before = SimClock(sim).now_ms()
            sim.advance(3600)  # an hour on: temperatures move by more than the COV increment
            await until(lambda: any(s.metric == "oat" for s in driver.pending))
            got = await driver.read()
            oat = [s for s in got if s.metric == "oat" and s.ts_ms is not None]  # from the notification
            assert oat and oat[-1].ts_ms > t_before
            assert oat[-1].value == pytest.approx(sim.model.values["oat"], abs=1e-4)
            sent = []  # of the objects subscribed and heard, one is read (a silent device must fail the poll)
            real = driver._rpm
            driver._rpm = lambda names, props: sent.append(names) or real(names, props)
            await driver.read()
            assert sent == [[next(iter(OBJECTS))]]
    finally:
        await sim.stop()


async def test_cov_subscriptions_are_renewed_before_their_lifetime_and_keep_notifying(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim, cov_lifetime=10) as driver:
            scm = driver.cov["oat"]
            await until(lambda: scm.refresh_subscription_task is not None and scm.refresh_subscription_task.done())
            assert scm.refresh_subscription_task.exception() is None
            await until(lambda: driver.heard >= set(OBJECTS))
            await driver.read()
            sim.advance(3600)
            await until(lambda: any(s.metric == "oat" for s in driver.pending))
            assert "oat" in driver.cov
    finally:
        await sim.stop()


async def test_a_device_gone_silent_fails_the_poll_even_when_everything_comes_by_cov(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim) as driver:  # 10 s request timeout: a loaded machine; the silence costs it
            await until(lambda: driver.heard >= set(OBJECTS))
            await driver.read()
            await sim.stop()
            with pytest.raises(DeviceTimeout):
                await driver.read()
            # closing unsubscribes every COV object of a gone device at once: a shutdown waits about one
            # unsubscribe timeout (1 s), not one per object (11 s here)
            waiting = [0, 0]  # unsubscribes under way now, the most at once

            def counted(unsubscribe):
                async def wrapper(*exc):
                    waiting[0] += 1
                    waiting[1] = max(waiting)
                    try:
                        return await unsubscribe(*exc)
                    finally:
                        waiting[0] -= 1
                return wrapper

            for scm in driver.cov.values():
                scm.__aexit__ = counted(scm.__aexit__)
            await driver.close()
            assert waiting == [0, len(OBJECTS)], "the unsubscribes of a gone device waited one after another"
    finally:
        await sim.stop()


async def test_a_failed_cov_renewal_falls_back_to_polling(tmp_path: Path) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim) as driver:
            await until(lambda: "sat" in driver.heard)
            scm = driver.cov["sat"]
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(ProtocolError("renewal refused"))
            scm.refresh_subscription_task = failed
            got = {s.metric for s in await driver.read()}
            assert "sat" not in driver.cov and "sat" in got
    finally:
        await sim.stop()


async def test_set_points_and_commands_are_written_at_a_priority_only_through_the_gate(tmp_path: Path) -> None:
    sim = await start()
    try:
        objs = objects()
        objs["sat_sp"] |= {"low": 10.0, "high": 18.0}
        objs["damper"] |= {"low": 0.0, "high": 100.0, "priority": 5}
        for writable, status in (([], "refused"), (["sat_sp", "damper"], "accepted")):
            driver, pool = build_driver(SPEC, device(sim, objects=objs, writable=writable, cov=False),
                                        tmp_path / status)
            await driver.open()
            router = CommandRouter(CommandsConfig(), devices={"ahu": driver.config}, drivers={"ahu": driver},
                                   ids=IdStore(tmp_path / f"ids-{status}.db", limit=100))
            try:
                out = await router.handle("ahu", orjson.dumps({"id": f"a-{status}", "action": "write",
                                                                "point": "sat_sp", "value": 15.5}))
                assert out.status == status, out.result
                if status == "accepted":
                    out = await router.handle("ahu", orjson.dumps({"id": "b", "action": "write", "point": "sat_sp",
                                                                    "value": 25}))
                    assert out.status == "refused" and "outside" in str(out.result), out.result
                    out = await router.handle("ahu", orjson.dumps({"id": "c", "action": "write", "point": "damper",
                                                                    "value": 55}))
                    assert out.status == "accepted", out.result
                    sim.advance(60)
                    assert sim.model.sat_sp == 15.5
                    pa = list(sim.objects["damper"].priorityArray)
                    assert float(pa[4].real) == 55.0 and sim.model.values["damper"] == 55.0  # priority 5 wins
                    out = await router.handle("ahu", orjson.dumps({"id": "d", "action": "write",
                                                                    "point": "damper_release"}))
                    assert out.status == "accepted", out.result
                    sim.advance(60)
                    assert sim.model.values["damper"] == sim.model.commands["damper"]  # the controller again
            finally:
                router.close()
                await driver.close()
                await pool.close()
    finally:
        await sim.stop()


async def test_two_devices_share_the_gateways_bacnet_port(tmp_path: Path) -> None:
    a, b = await start(instance=1001), await start(instance=1002, faults=("sensor_bias",))
    local = f"127.0.0.1:{free_udp_port()}"
    drivers, pools = [], []
    try:
        for i, sim in enumerate((a, b)):
            d, p = build_driver(SPEC, SimDevice(device={**device(sim).device, "local_address": local}, lines={}),
                                tmp_path / str(i))
            await d.open()
            drivers.append(d)
            pools.append(p)
        assert drivers[0].app is drivers[1].app
        for d, sim in zip(drivers, (a, b), strict=True):
            got = {s.metric: s.value for s in await d.read()}
            assert got["mat"] == pytest.approx(sim.model.values["mat"], abs=1e-4)
        other, p = build_driver(SPEC, SimDevice(device={**device(a).device, "local_address": local,
                                                       "local_instance": 7}, lines={}), tmp_path / "x")
        with pytest.raises(DeviceError, match="need the same three"):
            await other.open()
        await p.close()
    finally:
        for d in drivers:
            await d.close()
        for p in pools:
            await p.close()
        await a.stop()
        await b.stop()


async def test_registers_as_a_foreign_device_with_a_bbmd_and_reads_through_it(tmp_path: Path) -> None:
    sim = await start(bbmd=True)
    try:
        local = f"127.0.0.1:{free_udp_port()}"
        driver, pool = build_driver(SPEC, SimDevice(device={**device(sim, cov=False).device, "local_address": local,
                                                           "foreign_bbmd": sim.address, "foreign_ttl": 60}, lines={}),
                                    tmp_path)
        await driver.open()
        try:
            assert sim.foreign_devices() == [local]
            got = {s.metric: s.value for s in await driver.read()}
            assert got["sat"] == pytest.approx(sim.model.values["sat"], abs=1e-4)
        finally:
            await driver.close()
            await pool.close()
    finally:
        await sim.stop()


async def test_a_bbmd_that_does_not_answer_is_a_timeout_naming_it(tmp_path: Path) -> None:
    sim = await start()
    try:
        nobody = f"127.0.0.1:{free_udp_port()}"
        driver, pool = build_driver(SPEC, SimDevice(device={**device(sim, cov=False).device, "foreign_bbmd": nobody,
                                                           "request_timeout": 1}, lines={}), tmp_path)
        with pytest.raises(DeviceTimeout, match=f"foreign-device registration with {nobody}"):
            await driver.open()
        await pool.close()
    finally:
        await sim.stop()


@pytest.mark.parametrize("change, error", [
    ({"objects": {"sat": {"object": "analog-input,99"}}}, "not on device"),
    ({"objects": {"sat": {"object": "analog-input,4", "unit": "degF"}}}, r"is in degrees-celsius \(degC\), config says unit = .degF."),
])
async def test_a_missing_object_or_a_wrong_unit_is_a_clear_protocol_error(tmp_path: Path, change, error) -> None:
    sim = await start()
    try:
        driver, pool = build_driver(SPEC, device(sim, cov=False, **change), tmp_path)
        with pytest.raises(ProtocolError, match=error):
            await driver.open()
        assert driver.app is None  # the port is released
        await pool.close()
    finally:
        await sim.stop()


async def test_a_device_that_does_not_answer_times_out(tmp_path: Path) -> None:
    sim = SimDevice(device={"type": "bacnet", "address": f"127.0.0.1:{free_udp_port()}", "device_instance": 7,
                            "local_address": f"127.0.0.1:{free_udp_port()}", "objects": objects(),
                            "request_timeout": 0.5}, lines={})
    driver, pool = build_driver(SPEC, sim, tmp_path)
    with pytest.raises(DeviceTimeout, match="no answer to Who-Is"):
        await driver.open()
    await pool.close()


@pytest.mark.parametrize("change, error", [
    ({"objects": {"x": {"object": "schedule,1"}}}, "has no present value"),
    ({"objects": {"x": {"object": "analog-input,4194303"}}}, "out of range"),
    ({"objects": {"x": {"object": "ai 4"}}}, "not an object identifier"),
    ({"writable": ["sat"]}, "takes no writes"),
    ({"writable": ["sat_sp"]}, "needs low and high"),
    ({"writable": ["nope"]}, "not one of objects"),
    ({"ahu": {"supply": "sat"}}, "unknown role"),
    ({"ahu": {"sat": "supply_temp"}}, "not among objects"),
])
def test_broken_config_names_what_is_wrong(change, error) -> None:
    base = {"name": "ahu", "type": "bacnet", "address": "10.0.0.5", "device_instance": 1, "objects": objects()}
    with pytest.raises(ValidationError, match=error):
        SPEC.config_model.model_validate(base | change)


@pytest.mark.parametrize("reply, error", [
    (None, "no present-value for sat"),
    ("n/a", "sat present-value 'n/a' is not a number"),
])
async def test_a_reply_without_a_usable_present_value_is_a_protocol_error(tmp_path: Path, reply, error) -> None:
    sim = await start()
    try:
        async with opened(tmp_path, sim, cov=False) as driver:
            real = driver._rpm

            async def garbled(names, props):  # the device's reply, with sat's present-value replaced
                got = await real(names, props)
                return [(n, p, reply if (n, p) == ("sat", "present-value") else v) for n, p, v in got]
            driver._rpm = garbled
            with pytest.raises(ProtocolError, match=error):
                await driver.read()
            driver._rpm = real
            assert len(await driver.read()) == len(OBJECTS)  # the next poll reads again
    finally:
        await sim.stop()


@pytest.mark.parametrize("fault, error", [("nonsense", "unknown fault 'nonsense'"),
                                          ("stuck_damper=half", "'half' is not a number")])
def test_the_simulator_names_a_bad_fault(fault, error) -> None:
    from click.testing import CliRunner

    from drivers.bacnet.sim import command
    r = CliRunner().invoke(command, ["--fault", fault])
    assert r.exit_code == 2 and error in r.output, r.output


# -- fault diagnosis on traces read through BACnet -------------------------------------------------
async def trace(tmp_path: Path, faults: tuple[str, ...]) -> list:
    """A day of the simulated AHU at 5-minute steps, each step read by the driver with FDD on."""
    sim = await start(faults=faults)
    try:
        async with opened(tmp_path, sim, cov=False, ahu=AHU_ROLES) as driver:
            for _ in range(288):
                sim.advance(300)
                await driver.read()
            return driver.events
    finally:
        await sim.stop()


async def test_the_clean_ahu_raises_no_fault(tmp_path: Path) -> None:
    assert await trace(tmp_path, ()) == []


@pytest.mark.parametrize("fault, rules", [
    ("stuck_damper", {"fc6"}),  # outdoor-air fraction at minimum OA is far from the damper's
    ("leaking_valve", {"fc8"}),  # economizer only: supply colder than mixed air + fan heat
    ("sensor_bias", {"fc2"}),  # mixed air reads colder than both outdoor and return air
])
async def test_each_seeded_fault_is_found_with_its_rule_evidence_and_hours(tmp_path: Path, fault, rules) -> None:
    events = await trace(tmp_path, (fault,))
    started = {e.rule for e in events if e.state == "start"}
    assert rules <= started, [(e.rule, e.state) for e in events]
    e = next(e for e in events if e.rule in rules and e.state == "start")
    assert e.evidence and all(v == v for v in e.evidence.values())
    ended = [e for e in events if e.rule in rules and e.state == "end"]
    assert all(x.hours > 0 for x in ended)


async def test_fault_hours_are_published_as_metrics(tmp_path: Path) -> None:
    sim = await start(faults=("sensor_bias",))
    try:
        async with opened(tmp_path, sim, cov=False, ahu=AHU_ROLES) as driver:
            for _ in range(30):
                sim.advance(300)
                got = {s.metric: s.value for s in await driver.read()}
            assert got["fault_fc2"] > 1.0 and got["fault_fc1"] == 0.0
            assert {"fault_fc2", "fault_fc8"} <= {m.name for m in driver.metrics()}
    finally:
        await sim.stop()


# -- the technician's CLI: scan, run --once --------------------------------------------------------
def edge_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def test_scan_finds_the_ahu_and_its_points_and_run_once_reads_them(tmp_path: Path) -> None:
    from tests.sim_thread import simulator

    with simulator("bacnet-ahu") as sim:
        r = edge_agent("scan", "--protocol", "bacnet", "--tcp", sim.address, "--local",
                       f"127.0.0.1:{free_udp_port()}", "--timeout", "10")
        assert r.returncode == 0, r.stdout + r.stderr
        assert 'device 1001 "AHU-1"' in r.stdout and "analog-input,4" in r.stdout
        block = r.stdout[r.stdout.index("[[devices]]"):].split("\n\n")[0]
        block = "\n".join(x for x in block.splitlines() if not x.startswith(("#", "=", "-")))
        block = block.replace('local_address = "127.0.0.1', 'request_timeout = 10\nlocal_address = "127.0.0.1')
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[gateway]\nid = "gw-b"\nstate_dir = "{tmp_path / "st"}"\n\n[mqtt]\nhost = "127.0.0.1"\n'
                       f'port = 1\n\n{block}\n')
        assert edge_agent("check", "--config", str(cfg)).returncode == 0, cfg.read_text()
        r = edge_agent("run", "--once", "--config", str(cfg))
        served = dict(sim.model.values)
    assert r.returncode == 0 and "1 answered, 0 failed" in r.stderr, r.stderr
    readings = {row["metric"]: row["value"] for row in orjson.loads(r.stdout.strip().partition(" ")[2])["readings"]}
    assert readings["sat"] == pytest.approx(served["sat"], abs=1e-4)  # metrics named after the object-names


def test_scan_where_nothing_answers_says_so_and_exits_1() -> None:
    nobody = f"127.0.0.1:{free_udp_port()}"
    r = edge_agent("scan", "--protocol", "bacnet", "--tcp", nobody, "--local", f"127.0.0.1:{free_udp_port()}",
                   "--timeout", "1")
    assert r.returncode == 1 and f"no I-Am within 1 s from {nobody}" in r.stdout, r.stdout + r.stderr


def test_the_agent_publishes_ahu_fault_events_and_fault_hours(tmp_path: Path, mosquitto, mqtt_subscriber) -> None:
    """The real agent, a real mosquitto, a faulty AHU (mixed-air sensor reading 4 K low) running at
    ten simulated minutes per second: a fault_start event for fc2 with its evidence, and the hours
    in fault as a metric."""
    from tests.sim_thread import simulator

    with simulator("bacnet-ahu", faults=("sensor_bias",), speed=600.0, period=0.5) as sim:
        objs = ", ".join(f'{n} = {{ object = "{t},{i}" }}' for n, (t, i, _, _) in OBJECTS.items())
        roles = ", ".join(f'{r} = "{r}"' for r in AHU_ROLES)
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[gateway]\nid = "gw-f"\nstate_dir = "{tmp_path / "st"}"\n\n'
                       f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n\n'
                       f'[[devices]]\nname = "ahu-1"\ntype = "bacnet"\naddress = "{sim.address}"\n'
                       f'device_instance = 1001\nlocal_address = "127.0.0.1:{free_udp_port()}"\n'
                       f'poll_interval = 0.5\ntimeout = 20\nrequest_timeout = 10\n'
                       f'objects = {{ {objs} }}\nahu = {{ {roles} }}\nfdd = {{ on_count = 3, off_count = 3 }}\n')
        sub = mqtt_subscriber(mosquitto, "edge/gw-f/#")
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            got = sub.wait_for(1, 120, predicate=lambda m: m.topic == "edge/gw-f/event"
                               and m.json().get("kind") == "fault_start" and m.json().get("rule") == "fc2")
            event = got[0].json()
            assert event["device"] == "ahu-1" and set(event["evidence"]) == {"mat", "rat", "oat"}
            assert event["evidence"]["mat"] < min(event["evidence"]["rat"], event["evidence"]["oat"])
            sub.wait_for(1, 120, predicate=lambda m: m.topic == "edge/gw-f/telemetry/ahu-1" and any(
                r["metric"] == "fault_fc2" and r["value"] > 0 for r in m.json()["readings"]))
        finally:
            agent.terminate()
            _, err = agent.communicate(timeout=30)
    assert "Traceback" not in err, err
