"""The central-system side of one connected charge point (handlers of the ``ocpp`` 2.1.0 package)."""

from __future__ import annotations

import logging
import time

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from .session import OcppLineConfig, Session, ingest_meter_values, now_iso, to_float


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
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kw):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw):
        self._seen()
        s = self.session
        tx = s.next_tx
        s.next_tx += 1
        s.transaction[int(connector_id)] = tx
        s.meter_start_wh[int(connector_id)] = to_float(meter_start)
        s.measurands.setdefault(int(connector_id), {})["Energy.Active.Import.Register"] = to_float(meter_start)
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **kw):
        self._seen()
        s = self.session
        for conn, tx in list(s.transaction.items()):
            if tx == transaction_id:
                del s.transaction[conn]
                s.measurands.setdefault(conn, {})["Energy.Active.Import.Register"] = to_float(meter_stop)
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list, **kw):
        self._seen()
        ingest_meter_values(self.session, int(connector_id), meter_value)
        return call_result.MeterValues()
