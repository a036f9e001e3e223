"""What the central system knows of one charge point (its :class:`Session`), and the ``ocpp`` line config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agent.contract.lazy import lazy_exports

from .txstore import TxStore

OCPP_BUS = "ocpp"
log = logging.getLogger("drivers.ocpp_charger.server")
# the line's config model (pydantic) is in .config, imported on first use
__getattr__ = lazy_exports(__name__, {"OcppLineConfig": "drivers.ocpp_charger.config"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Session:
    cp_id: str
    connected: bool = False
    boot: dict[str, Any] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)  # connector -> OCPP status
    error: dict[int, str] = field(default_factory=dict)
    transaction: dict[int, int] = field(default_factory=dict)  # connector -> transaction id
    meter_start_wh: dict[int, float] = field(default_factory=dict)
    measurands: dict[int, dict[str, float]] = field(default_factory=dict)
    last_seen: float = 0.0
    handler: Any = None  # the ocpp ChargePoint object while connected
    store: TxStore = field(default_factory=lambda: TxStore(None))

    def restore(self) -> None:
        for conn, t in self.store.running(self.cp_id).items():  # running when the agent last stopped
            self.transaction[conn] = t["tx"]
            if t["meter_start_wh"] is not None:
                self.meter_start_wh[conn] = t["meter_start_wh"]

    def tx_started(self, connector: int, tx: int, meter_start_wh: float | None) -> None:
        self.transaction[connector] = tx
        if meter_start_wh is None:
            self.meter_start_wh.pop(connector, None)
        else:
            self.meter_start_wh[connector] = meter_start_wh
        self.store.started(self.cp_id, connector, tx, meter_start_wh)

    def tx_stopped(self, tx: int) -> int | None:
        """Forget transaction ``tx``; its connector (None if it was not known to run)."""
        for conn, t in list(self.transaction.items()):
            if t == tx:
                del self.transaction[conn]
                self.meter_start_wh.pop(conn, None)
                self.store.stopped(self.cp_id, conn)
                return conn
        return None

    def tx_seen(self, connector: int, tx: int) -> None:
        """The charge point reports ``tx`` running on ``connector`` (MeterValues): adopt it if new to us
        (started while the agent was away, or its state lost); meterStart is then unknown."""
        if self.transaction.get(connector) != tx:
            log.info("charge point %s: transaction %d on connector %d recovered from its MeterValues",
                     self.cp_id, tx, connector)
            self.tx_started(connector, tx, None)

    def no_transaction(self, connector: int) -> None:
        """Status Available: nothing runs on ``connector`` (a StopTransaction we missed)."""
        tx = self.transaction.get(connector)
        if tx is not None:
            log.info("charge point %s: connector %d is Available; transaction %d ended", self.cp_id, connector, tx)
            self.tx_stopped(tx)


def to_float(value: Any) -> float:
    """OCPP numbers arrive as Decimal, sampledValue.value as a string."""
    if isinstance(value, Decimal):
        return float(value)
    return float(value)


SCALE = {"kWh": ("Wh", 1000.0), "kW": ("W", 1000.0), "Wh": ("Wh", 1.0), "W": ("W", 1.0), "A": ("A", 1.0), "V": ("V", 1.0)}


# statuses that exist only while a transaction runs (OCPP 1.6 section 4.9)
IN_TRANSACTION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})


def ingest_meter_values(session: Session, connector: int, meter_value: list[dict[str, Any]]) -> None:
    m = session.measurands.setdefault(connector, {})
    for mv in meter_value:
        for sv in mv.get("sampled_value", []):
            measurand = sv.get("measurand") or "Energy.Active.Import.Register"
            try:
                v = to_float(sv["value"])
            except (KeyError, ValueError, TypeError, ArithmeticError):
                log.info("charge point %s sent an unreadable sampled value %r", session.cp_id, sv)
                continue
            _, k = SCALE.get(sv.get("unit") or ("Wh" if measurand.startswith("Energy") else "W"), ("", 1.0))
            key = measurand + ("." + sv["phase"] if sv.get("phase") else "")
            m[key] = v * k
