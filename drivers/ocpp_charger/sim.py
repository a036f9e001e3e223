"""A simulated OCPP 1.6J charge point: the ``ocpp`` package's own ChargePoint over real websockets.

It boots, reports status, starts a transaction on RemoteStartTransaction, obeys SetChargingProfile
limits, sends MeterValues, and stops on RemoteStopTransaction, with an EvseModel as its physics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click
import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, ChargingProfileStatus, RemoteStartStopStatus, TriggerMessageStatus

from agent.contract import SimulatorSpec
from agent.simkit.snippets import banner, snippet_for_device
from drivers.charger_common import Arrivals, Car, EvseModel, IecState

from .session import now_iso


class SimChargePoint(ChargePoint):
    def __init__(self, cp_id: str, ws: Any, *, clock: Callable[[], float] = time.monotonic, speed: float = 1.0):
        super().__init__(cp_id, ws, logger=logging.getLogger("edge_agent.sim.ocpp"))  # apart from the gateway's
        self._clock = clock
        self._t0 = clock()
        self.speed = speed
        self.evse = EvseModel(total_wh=500_000.0, now=0.0)
        self.tx: int | None = None
        self.meter_start = 0
        self.reported: str | None = None
        self.profiles: list[tuple[int, dict]] = []

    def now(self) -> float:
        return (self._clock() - self._t0) * self.speed

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw):
        ok = self.evse.car is not None and self.tx is None
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @after(Action.remote_start_transaction)
    async def after_remote_start(self, id_tag: str, **kw):
        if self.evse.car is not None and self.tx is None:
            await self.start_transaction(id_tag)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **kw):
        ok = self.tx == transaction_id
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @after(Action.remote_stop_transaction)
    async def after_remote_stop(self, transaction_id: int, **kw):
        if self.tx == transaction_id:
            await self.stop_transaction("Remote")

    @on(Action.trigger_message)
    def on_trigger(self, requested_message: str, **kw):
        ok = requested_message in ("MeterValues", "StatusNotification")
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted if ok else TriggerMessageStatus.not_implemented)

    @after(Action.trigger_message)
    async def after_trigger(self, requested_message: str, **kw):
        if requested_message in ("MeterValues", "StatusNotification"):
            self.reported = None if requested_message == "StatusNotification" else self.reported
            await self.report()

    # quirks of some deployed chargers, for tests: refuse Relative profiles, cap the stack level
    rejects_relative = False
    max_stack_level = 10

    @on(Action.set_charging_profile)
    def on_profile(self, connector_id: int, cs_charging_profiles: dict, **kw):
        p = cs_charging_profiles
        self.profiles.append((connector_id, p))
        if (self.rejects_relative and p["charging_profile_kind"] == "Relative") or p["stack_level"] > self.max_stack_level:
            return call_result.SetChargingProfile(status=ChargingProfileStatus.rejected)
        sched = p["charging_schedule"]
        limit = float(sched["charging_schedule_period"][0]["limit"])  # limits arrive as Decimal
        if sched["charging_rate_unit"] == "W":
            limit /= self.evse.voltage * 3
        self.evse.set_limit(limit, self.now())
        return call_result.SetChargingProfile(status=ChargingProfileStatus.accepted)

    # --- charger-initiated ------------------------------------------------------------------
    async def boot(self) -> None:
        await self.call(call.BootNotification(charge_point_vendor="EdgeSim", charge_point_model="AC22"))
        await self.report()

    async def start_transaction(self, id_tag: str) -> None:
        self.evse.set_enabled(True, self.now())
        self.meter_start = int(self.evse.total_wh)
        r = await self.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=self.meter_start, timestamp=now_iso()))
        self.tx = r.transaction_id

    async def stop_transaction(self, reason: str = "Local") -> None:
        self.evse.set_enabled(False, self.now())
        tx, self.tx = self.tx, None
        await self.call(call.StopTransaction(transaction_id=tx, meter_stop=int(self.evse.total_wh), timestamp=now_iso(), reason=reason))
        await self.report()

    def ocpp_status(self) -> str:
        t = self.now()
        st = self.evse.state(t)
        if st is IecState.A:
            return "Available"
        if st is IecState.C:
            return "Charging"
        if self.tx is None:
            return "Preparing"
        return "SuspendedEV" if not self.evse.wants_charge() else "SuspendedEVSE"

    async def report(self) -> None:
        """Send StatusNotification on change, and MeterValues."""
        t = self.now()
        self.evse.advance(t)
        status = self.ocpp_status()
        if status != self.reported:
            self.reported = status
            await self.call(call.StatusNotification(connector_id=1, error_code="NoError", status=status))
        i = self.evse.current_a(t)
        sv = [{"value": f"{self.evse.total_wh:.1f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
              {"value": f"{self.evse.power_w(t) / 1000:.3f}", "measurand": "Power.Active.Import", "unit": "kW"},
              {"value": f"{self.evse.offered_a(t):.1f}", "measurand": "Current.Offered", "unit": "A"}]
        for ph in ("L1", "L2", "L3"):
            sv.append({"value": f"{i if (ph == 'L1' or self.evse.phases() == 3) else 0:.2f}", "measurand": "Current.Import", "unit": "A", "phase": ph})
        mv: dict[str, Any] = {"connector_id": 1, "meter_value": [{"timestamp": now_iso(), "sampled_value": sv}]}
        if self.tx is not None:
            mv["transaction_id"] = self.tx
        await self.call(call.MeterValues(**mv))

    def plug(self, car: Car) -> None:
        self.evse.plug(car, self.now())
        self.evse.set_enabled(False, self.now())  # waits for authorisation (RemoteStart)

    async def unplug(self) -> None:
        if self.tx is not None:
            await self.stop_transaction("EVDisconnected")
        self.evse.unplug(self.now())
        await self.report()


class ChargePointHandle:
    def __init__(self, cp: SimChargePoint, ws: Any, task: asyncio.Task):
        self.cp = cp
        self.ws = ws
        self.task = task
        self._driver: asyncio.Task | None = None

    def drive(self, arrivals: Arrivals, interval: float = 5.0) -> None:
        async def loop() -> None:
            while True:
                had = self.cp.evse.car
                arrivals.step(self.cp.evse, self.cp.now())
                if had is None and self.cp.evse.car is not None:
                    self.cp.evse.set_enabled(False, self.cp.now())
                await self.cp.report()
                await asyncio.sleep(interval)

        self._driver = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
        self.task.cancel()
        await self.ws.close()


async def start(*, url: str = "ws://127.0.0.1:9000", cp_id: str = "CP1", clock: Callable[[], float] = time.monotonic,
                speed: float = 1.0, arrivals: bool = False, seed: int = 1) -> ChargePointHandle:
    """Connect a simulated charge point to a central system at ``url`` and boot it."""
    ws = await websockets.connect(f"{url.rstrip('/')}/{cp_id}", subprotocols=["ocpp1.6"])
    cp = SimChargePoint(cp_id, ws, clock=clock, speed=speed)
    task = asyncio.get_running_loop().create_task(cp.start())
    await cp.boot()
    h = ChargePointHandle(cp, ws, task)
    if arrivals:
        h.drive(Arrivals(seed=seed))
    return h


def config_snippet(url: str, cp_id: str) -> str:
    """The [lines.X] (the agent's OCPP server) and [[devices]] blocks for this charge point."""
    where = urlsplit(url)
    line = {"type": "ocpp", "host": where.hostname or "0.0.0.0", "port": where.port or 9000}
    return banner(snippet_for_device("ocpp", line, cp_id.lower(), {"type": "ocpp_charger", "charge_point_id": cp_id}))


@click.command(name="ocpp-charge-point", help="Simulate an OCPP 1.6J charge point with cars arriving.")
@click.option("--url", default="ws://127.0.0.1:9000", show_default=True, help="Central system URL (without the id).")
@click.option("--id", "cp_id", default="CP1", show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True)
def command(url: str, cp_id: str, speed: float) -> None:
    async def main() -> None:
        target = f"{url.rstrip('/')}/{cp_id}"
        click.echo("the agent is the central system this charge point connects to; in its config:")
        click.echo(config_snippet(url, cp_id))
        try:
            h = await start(url=url, cp_id=cp_id, speed=speed, arrivals=True)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as e:
            reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
            raise click.ClickException(f"cannot connect to the central system at {target}: {reason}") from None
        click.echo(f"charge point {cp_id} connected to {url}; Ctrl-C to stop")
        try:
            await h.task
        finally:
            await h.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


SIMULATOR = SimulatorSpec(name="ocpp-charge-point", summary="OCPP 1.6J charge point with arriving cars", command=command, start=start)
