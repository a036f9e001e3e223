"""What the central system knows of one charge point (its :class:`Session`), and the ``ocpp`` line config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.contract import LineConfig

OCPP_BUS = "ocpp"
log = logging.getLogger("drivers.ocpp_charger.server")


class OcppLineConfig(LineConfig):
    """The local central system: a websocket server OCPP 1.6J charge points connect to."""

    BUS: ClassVar[str | None] = OCPP_BUS

    type: Literal["ocpp"]
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(9000, ge=1, le=65535)
    heartbeat_interval: int = Field(60, ge=5, le=86_400, description="Heartbeat interval given to charge points (s).")
    response_timeout: float = Field(15.0, gt=0, le=120, description="Seconds to wait for a charge point's answer.")


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
    next_tx: int = 1


def to_float(value: Any) -> float:
    """OCPP numbers arrive as Decimal, sampledValue.value as a string."""
    if isinstance(value, Decimal):
        return float(value)
    return float(value)


SCALE = {"kWh": ("Wh", 1000.0), "kW": ("W", 1000.0), "Wh": ("Wh", 1.0), "W": ("W", 1.0), "A": ("A", 1.0), "V": ("V", 1.0)}


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
