"""OCPP 1.6J: the gateway's central system against the ocpp package's own ChargePoint over real websockets."""

from __future__ import annotations

import asyncio
import socket

import pytest
import websockets

from agent.bus.base import BusPool
from agent.bus.kinds import LINE_KINDS
from agent.driver import DriverContext
from agent.errors import BusUnavailable, DeviceError
from drivers.charger_common import Car, IecState
from drivers.ocpp_charger import OcppChargerConfig, OcppChargerDriver
from drivers.ocpp_charger.session import OcppLineConfig
from drivers.ocpp_charger.sim import start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def until(pred, timeout=30.0):
    """Wait for a condition (generous bound: emulated and loaded machines are slow)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def central(tmp_path):
    port = free_port()
    pool = BusPool({"ocpp": OcppLineConfig(type="ocpp", host="127.0.0.1", port=port)}, LINE_KINDS)
    cfg = OcppChargerConfig(name="cp1", type="ocpp_charger", line="ocpp", charge_point_id="CP1",
                            writable=["current_limit", "start", "stop"])
    drv = OcppChargerDriver(cfg, DriverContext("gw", tmp_path, pool))
    await drv.open()
    yield drv, f"ws://127.0.0.1:{port}"
    await pool.close()


async def values(drv):
    return {s.metric: s.value for s in await drv.read()}


async def test_whole_session_over_websockets(central):
    drv, url = central
    with pytest.raises(BusUnavailable, match="not connected"):
        await drv.read()
    clock = ManualClock()
    h = await start(url=url, cp_id="CP1", clock=clock)
    try:
        await until(lambda: drv.session.connected and drv.session.status.get(1) == "Available")
        assert drv.session.boot["vendor"] == "EdgeSim"
        v = await values(drv)
        assert v["state"] == IecState.A and v["energy_total"] == pytest.approx(500.0)
        h.cp.plug(Car(need_wh=2000, max_a=32))
        await h.cp.report()
        assert (await values(drv))["state"] == IecState.B
        assert await drv.write("current_limit", 16) == 16  # SetChargingProfile (TxDefaultProfile, A)
        assert h.cp.evse.limit_a == 16.0
        await drv.write("start", True)  # RemoteStartTransaction -> StartTransaction
        await until(lambda: 1 in drv.session.transaction)
        clock.t += 300
        await h.cp.report()
        await until(lambda: drv.session.status.get(1) == "Charging")
        v = await values(drv)
        assert v["state"] == IecState.C and v["charging"] == 1
        assert v["power"] == pytest.approx(16 * 690, rel=1e-3) and v["current_l1"] == pytest.approx(16)
        assert v["session_energy"] == pytest.approx(16 * 690 * 300 / 3.6e6, abs=0.002)
        assert v["current_limit"] == pytest.approx(16)
        await drv.write("current_limit", 10.5)
        clock.t += 1
        await h.cp.report()
        assert (await values(drv))["current_l1"] == pytest.approx(10.5)
        await drv.write("stop", True)  # RemoteStopTransaction -> StopTransaction, then StatusNotification
        # the charge point reports its new status after StopTransaction was answered: wait for both
        await until(lambda: 1 not in drv.session.transaction and drv.session.status.get(1) == "Preparing")
        v = await values(drv)
        assert v["state"] == IecState.B and v["enabled"] == 0
        await h.cp.unplug()
        await until(lambda: drv.session.status.get(1) == "Available")
    finally:
        await h.stop()
    await until(lambda: not drv.session.connected)
    with pytest.raises(BusUnavailable):
        await drv.write("start", True)


async def test_unknown_charge_point_is_refused(central):
    drv, url = central
    ws = await websockets.connect(f"{url}/INTRUDER", subprotocols=["ocpp1.6"])
    with pytest.raises(websockets.ConnectionClosed) as e:
        await asyncio.wait_for(ws.recv(), 60)
    assert e.value.rcvd.code == 1008
    assert "INTRUDER" not in drv.server.sessions


async def test_remote_start_without_a_car_is_a_device_error(central):
    from agent.errors import DeviceError

    drv, url = central
    h = await start(url=url, cp_id="CP1", clock=ManualClock())
    try:
        await until(lambda: drv.session.connected)
        with pytest.raises(DeviceError, match="Rejected"):
            await drv.write("start", True)
    finally:
        await h.stop()


async def test_frames_are_logged_at_debug_not_info(central, caplog):
    """A charger sends a frame every few seconds: the gateway's log at INFO must not carry them."""
    import logging

    drv, url = central
    caplog.set_level(logging.DEBUG, logger="ocpp")
    h = await start(url=url, cp_id="CP1", clock=ManualClock())
    try:
        await until(lambda: drv.session.connected and drv.session.status.get(1) == "Available")
        await h.cp.report()
    finally:
        await h.stop()
    frames = [r for r in caplog.records if r.name == "ocpp" and ("send" in r.getMessage() or "receive" in r.getMessage())]
    assert frames, "the central system's frames are logged (at DEBUG)"
    assert {r.levelno for r in frames} == {logging.DEBUG}



async def test_profile_quirks_selectable_per_charger(central):
    """A charger that refuses Relative profiles and stack levels above 0 (as some do in the field) is
    driven with Absolute profiles at level 0; a whole-charger cap goes to connector 0 as ChargePointMaxProfile."""
    from drivers.ocpp_charger.sim import SimChargePoint

    drv, url = central
    h = await start(url=url, cp_id="CP1", clock=ManualClock())
    try:
        await until(lambda: drv.session.connected and drv.session.status.get(1) == "Available")
        assert isinstance(h.cp, SimChargePoint)
        h.cp.rejects_relative = True
        h.cp.max_stack_level = 0
        with pytest.raises(DeviceError, match="SetChargingProfile with Rejected"):
            await drv.write("current_limit", 16)  # the default: Relative
        drv.config = drv.config.model_copy(update={"profile_kind": "absolute", "stack_level": 0})
        assert await drv.write("current_limit", 16) == 16
        conn, p = h.cp.profiles[-1]
        assert conn == 1 and p["charging_profile_purpose"] == "TxDefaultProfile"
        assert p["charging_profile_kind"] == "Absolute" and p["charging_schedule"]["start_schedule"]
        assert h.cp.evse.limit_a == 16.0
        drv.config = drv.config.model_copy(update={"profile_purpose": "charge_point_max", "rate_unit": "W"})
        await drv.write("current_limit", 10)
        conn, p = h.cp.profiles[-1]
        assert conn == 0 and p["charging_profile_purpose"] == "ChargePointMaxProfile"
        assert p["charging_schedule"]["charging_rate_unit"] == "W"
        assert float(p["charging_schedule"]["charging_schedule_period"][0]["limit"]) == 10 * 230 * 3
        assert h.cp.evse.limit_a == pytest.approx(10.0)
    finally:
        await h.stop()


async def charging(drv, url, clock):
    """A simulated charge point with a transaction running (started by a remote start)."""
    h = await start(url=url, cp_id="CP1", clock=clock)
    await until(lambda: drv.session.connected and drv.session.status.get(1) == "Available")
    h.cp.plug(Car(need_wh=20_000, max_a=32))
    await h.cp.report()
    await drv.write("start", True)
    await until(lambda: 1 in drv.session.transaction)
    clock.t += 60
    await h.cp.report()
    await until(lambda: drv.session.status.get(1) == "Charging")
    return h


async def test_a_new_central_system_on_the_same_state_dir_knows_the_running_transaction(central, tmp_path):
    drv, url = central
    clock = ManualClock()
    h = await charging(drv, url, clock)
    try:
        tx = drv.session.transaction[1]
        energy = (await values(drv))["session_energy"]
        assert energy > 0
        # the agent restarts: a new line and driver on the same state dir, before the charge point reports
        port = free_port()
        pool = BusPool({"ocpp": OcppLineConfig(type="ocpp", host="127.0.0.1", port=port)}, LINE_KINDS)
        again = OcppChargerDriver(drv.config, DriverContext("gw", tmp_path, pool))
        await again.open()
        try:
            assert again.session.transaction == {1: tx}
            assert again.session.store.allocate() > tx  # ids are never handed out twice
        finally:
            await pool.close()
    finally:
        await h.stop()


async def test_stop_asks_the_charge_point_for_a_transaction_id_it_does_not_know(central):
    """State lost while charging: TriggerMessage(MeterValues) brings the id, then RemoteStopTransaction."""
    drv, url = central
    clock = ManualClock()
    h = await charging(drv, url, clock)
    try:
        tx = h.cp.tx
        drv.session.transaction.clear()
        drv.session.store.open.clear()
        assert (await values(drv)).get("session_energy") is None  # not invented
        assert await drv.write("stop", True) is True
        await until(lambda: h.cp.tx is None and drv.session.status.get(1) == "Preparing")
        assert h.cp.evse.enabled is False and tx not in drv.session.transaction.values()
    finally:
        await h.stop()


async def test_a_damaged_transaction_file_is_set_aside_and_named(tmp_path, caplog):
    from drivers.ocpp_charger.txstore import TxStore

    path = tmp_path / "ocpp-ocpp.json"
    path.write_text('{"next_tx": "many"')
    store = TxStore(path)
    store.load()
    assert (tmp_path / "ocpp-ocpp.json.damaged").read_text() == '{"next_tx": "many"'
    assert str(path) in caplog.text and "damaged" in caplog.text
    assert store.allocate() > 100_000_000  # from the wall clock: above any id a counter reached
    again = TxStore(path)
    again.load()
    assert again.next_tx == store.next_tx  # and saved


async def test_a_charging_status_without_a_known_transaction_makes_the_central_system_ask_for_it(central):
    from ocpp.v16 import call

    drv, url = central
    clock = ManualClock()
    h = await charging(drv, url, clock)
    try:
        tx = h.cp.tx
        drv.session.transaction.clear()  # as after a restart with the state lost
        await h.cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await until(lambda: drv.session.transaction.get(1) == tx)  # TriggerMessage -> MeterValues(transactionId)
        assert drv.session.store.next_tx > tx
    finally:
        await h.stop()
