"""OCPP 1.6J charge point as a charger device: readings from its session, commands as OCPP calls.

Status -> IEC 61851: Available/Reserved A; Preparing, SuspendedEV, SuspendedEVSE, Finishing B;
Charging C; Unavailable E; Faulted F.
"""

from __future__ import annotations

import asyncio
import enum
import math
from typing import TYPE_CHECKING, Any

from agent.contract import BusUnavailable, DeviceError, DriverContext, MetricSpec, Sample
from agent.contract.lazy import lazy_exports
from drivers.charger_common import CHARGER_METRICS, ChargerDriver, ChargerStatus, IecState

from .session import IN_TRANSACTION

if TYPE_CHECKING:
    from .config import OcppChargerConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"OcppChargerConfig": "drivers.ocpp_charger.config"})

TRIGGER_WAIT_S = 5.0  # for the MeterValues a TriggerMessage asked for

STATUS_TO_IEC = {
    "Available": IecState.A, "Reserved": IecState.A, "Preparing": IecState.B, "SuspendedEV": IecState.B,
    "SuspendedEVSE": IecState.B, "Finishing": IecState.B, "Charging": IecState.C, "Unavailable": IecState.E,
    "Faulted": IecState.F,
}


class OcppChargerDriver(ChargerDriver):
    def __init__(self, config: OcppChargerConfig, ctx: DriverContext):
        self.config = config
        self.server: Any = ctx.buses.get(config.line)
        self.session = self.server.register(config.charge_point_id, ctx.state_dir)
        self._limit: float | None = None
        self._enabled = True

    def metrics(self) -> list[MetricSpec]:
        return list(CHARGER_METRICS)

    async def open(self) -> None:
        await self.server.open()

    async def close(self) -> None:
        pass

    async def read(self) -> list[Sample]:
        s = self.session
        if not s.connected:
            raise BusUnavailable(f"charge point {self.config.charge_point_id!r} is not connected")
        c = self.config.connector
        status = s.status.get(c)
        m = s.measurands.get(c, {})
        st = ChargerStatus(state=STATUS_TO_IEC.get(status or "", IecState.UNKNOWN))
        st.enabled = self._enabled and status != "SuspendedEVSE"
        st.current_limit = m.get("Current.Offered", self._limit)
        for ph, key in (("l1", "L1"), ("l2", "L2"), ("l3", "L3")):
            i = m.get(f"Current.Import.{key}")
            if i is not None:
                setattr(st, f"current_{ph}", i)
                setattr(st, f"power_{ph}", i * m.get(f"Voltage.{key}-N", m.get(f"Voltage.{key}", self.config.voltage)))
        st.power = m.get("Power.Active.Import")
        if st.power is None and st.state.value < IecState.C:
            st.power = 0.0
        e = m.get("Energy.Active.Import.Register")
        if e is not None:
            st.energy_total = e / 1000
            if c in s.transaction and c in s.meter_start_wh:  # unknown for a transaction recovered from MeterValues
                st.session_energy = (e - s.meter_start_wh[c]) / 1000
        err = s.error.get(c)
        st.error = 0 if err in (None, "NoError") else 1
        return st.samples()

    async def set_current_limit(self, amps: float) -> float:
        from .profiles import profile_request

        if not math.isfinite(amps) or amps < 0:
            raise ValueError(f"current limit must be >= 0 A, got {amps!r}")
        resp = await self.server.call(self.config.charge_point_id, profile_request(self.config, amps))
        self._check(resp, "SetChargingProfile")
        self._limit = amps
        return amps

    async def start(self) -> bool:
        from ocpp.v16 import call

        req = call.RemoteStartTransaction(id_tag=self.config.id_tag, connector_id=self.config.connector)
        self._check(await self.server.call(self.config.charge_point_id, req), "RemoteStartTransaction")
        self._enabled = True
        return True

    async def stop(self) -> bool:
        """RemoteStopTransaction of the connector's transaction; succeeds only if the charge point
        accepted it. Without a known transaction nothing is sent and the stop fails, saying why."""
        from ocpp.v16 import call

        c = self.config.connector
        tx = self.session.transaction.get(c)
        if tx is None and self.session.status.get(c) in IN_TRANSACTION | {None}:
            tx = await self._ask_transaction()
        if tx is None:
            status = self.session.status.get(c)
            if status in IN_TRANSACTION:
                raise DeviceError(f"connector {c} is {status} but the charge point did not tell its transaction id; "
                                  "RemoteStopTransaction not sent")
            raise DeviceError(f"no transaction runs on connector {c} (status {status or 'unknown'}); nothing was sent")
        req = call.RemoteStopTransaction(transaction_id=tx)
        self._check(await self.server.call(self.config.charge_point_id, req), f"RemoteStopTransaction({tx})")
        self._enabled = False
        return True

    async def _ask_transaction(self) -> int | None:
        """TriggerMessage(MeterValues): a charge point's MeterValues carry the running transaction's id."""
        from ocpp.v16 import call
        from ocpp.v16.enums import MessageTrigger

        c = self.config.connector
        req = call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=c)
        resp = await self.server.call(self.config.charge_point_id, req)
        if resp is None or str(getattr(resp.status, "value", resp.status)) != "Accepted":
            return None
        for _ in range(int(TRIGGER_WAIT_S / 0.05)):
            if c in self.session.transaction:
                return self.session.transaction[c]
            await asyncio.sleep(0.05)
        return None

    def _check(self, resp: Any, what: str) -> None:
        """``resp``: the call result (each of ours has a ``status``), None when the charge point answered an error."""
        if resp is None:
            raise DeviceError(f"charge point answered {what} with an error")
        status = resp.status.value if isinstance(resp.status, enum.Enum) else str(resp.status)
        if status != "Accepted":
            raise DeviceError(f"charge point answered {what} with {status}")
