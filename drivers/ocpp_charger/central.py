"""The central-system side of one connected charge point (handlers of the ``ocpp`` 2.1.0 package)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, DataTransferStatus, MessageTrigger, RegistrationStatus

from .callerror import route_message
from .session import IN_TRANSACTION, Session, ingest_meter_values, now_iso, to_float

if TYPE_CHECKING:
    from .config import OcppLineConfig

log = logging.getLogger("drivers.ocpp_charger.server")


class FramesAtDebug(logging.LoggerAdapter):
    """The ``ocpp`` package logs every frame sent and received at INFO; here they are DEBUG
    (a charger sends one every few seconds). Its warnings and errors keep their level."""

    def info(self, msg, *args, **kwargs) -> None:
        self.debug(msg, *args, **kwargs)


class CentralSystemSide(ChargePoint):
    def __init__(self, cp_id: str, ws, session: Session, config: OcppLineConfig, **kw):
        kw.setdefault("logger", FramesAtDebug(logging.getLogger("ocpp"), {}))
        super().__init__(cp_id, ws, **kw)
        self.session = session
        self.line = config

    def _seen(self) -> None:
        self.session.last_seen = time.monotonic()

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw):
        self._seen()
        self.session.boot = {"vendor": charge_point_vendor, "model": charge_point_model, **kw}
        return call_result.BootNotification(current_time=now_iso(), interval=self.line.heartbeat_interval,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw):
        self._seen()
        return call_result.Heartbeat(current_time=now_iso())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **kw):
        self._seen()
        self.session.status[int(connector_id)] = str(status)
        self.session.error[int(connector_id)] = str(error_code)
        if str(status) == "Available" and int(connector_id) > 0:
            self.session.no_transaction(int(connector_id))
        return call_result.StatusNotification()

    @after(Action.status_notification)
    async def after_status(self, connector_id: int, status: str, **kw):
        """A connector in a transaction we have no id for (the agent was away, its state lost): ask for
        MeterValues, which carry the transaction's id."""
        conn = int(connector_id)
        if conn > 0 and str(status) in IN_TRANSACTION and conn not in self.session.transaction:
            try:
                await self.call(call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=conn))
            except Exception as e:  # noqa: BLE001 - best effort: a stop asks again
                log.info("charge point %s: TriggerMessage(MeterValues) failed: %s", self.id, e)

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kw):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw):
        self._seen()
        s = self.session
        tx = s.store.allocate()  # unique across restarts: the counter is persisted first
        s.tx_started(int(connector_id), tx, to_float(meter_start))
        s.measurands.setdefault(int(connector_id), {})["Energy.Active.Import.Register"] = to_float(meter_start)
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **kw):
        self._seen()
        s = self.session
        conn = s.tx_stopped(int(transaction_id))
        if conn is not None:
            s.measurands.setdefault(conn, {})["Energy.Active.Import.Register"] = to_float(meter_stop)
        s.store.seen(int(transaction_id))  # an id we did not hand out (state lost): never hand it out again
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None, **kw):
        self._seen()
        if transaction_id is not None and int(connector_id) > 0:
            self.session.tx_seen(int(connector_id), int(transaction_id))
        ingest_meter_values(self.session, int(connector_id), meter_value)
        return call_result.MeterValues()

    # CP -> CS messages a central system answers even though it has no use for them
    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kw):
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str, **kw):
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **kw):
        return call_result.FirmwareStatusNotification()

    async def route_message(self, raw_msg: str) -> None:
        """As the ``ocpp`` package routes a message, but every CALLERROR carries an OCPP-J 1.6 code."""
        await route_message(self, raw_msg)
