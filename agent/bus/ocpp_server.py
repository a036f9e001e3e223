"""The OCPP 1.6J local central system: a websocket server (line kind ``ocpp``) chargers connect to.

Charge points connect to ``ws://gateway:port/<chargePointId>`` with subprotocol ``ocpp1.6``. Only ids
configured as devices are accepted. Everything a charge point reports (BootNotification, Heartbeat,
StatusNotification, MeterValues, Start/StopTransaction) lands in its :class:`Session`, which the
driver reads; the driver's writes become RemoteStart/StopTransaction and SetChargingProfile calls.
The ``ocpp`` and ``websockets`` packages are imported only when such a line is used.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from agent.config.schema import LineConfig
from agent.errors import BusUnavailable

log = logging.getLogger(__name__)


class OcppLineConfig(LineConfig):
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


class OcppServer:
    def __init__(self, name: str, config: OcppLineConfig):
        self.name = name
        self.config = config
        self.sessions: dict[str, Session] = {}
        self._server: Any = None
        self._lock = asyncio.Lock()

    def register(self, cp_id: str) -> Session:
        return self.sessions.setdefault(cp_id, Session(cp_id))

    async def open(self) -> None:
        async with self._lock:
            if self._server is not None:
                return
            try:
                import websockets
            except ImportError as e:  # pragma: no cover - the optional extra is missing
                raise BusUnavailable("OCPP needs the optional extra: pip install 'edge-agent[ocpp]'") from e
            try:
                self._server = await websockets.serve(self._on_connect, self.config.host, self.config.port,
                                                      subprotocols=["ocpp1.6"])
            except OSError as e:
                raise BusUnavailable(f"OCPP line {self.name!r} cannot listen on {self.config.host}:{self.config.port}: {e}") from e

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1] if self._server else self.config.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _on_connect(self, ws: Any) -> None:
        from drivers.ocpp_charger.central import CentralSystemSide

        cp_id = ws.request.path.strip("/").rsplit("/", 1)[-1]
        if ws.subprotocol != "ocpp1.6":
            await ws.close(1002, "subprotocol ocpp1.6 required")
            return
        session = self.sessions.get(cp_id)
        if session is None:
            log.warning("OCPP line %s: refused unknown charge point %r", self.name, cp_id)
            await ws.close(1008, "unknown charge point id")
            return
        cp = CentralSystemSide(cp_id, ws, session, self.config, response_timeout=self.config.response_timeout)
        session.handler = cp
        session.connected = True
        try:
            await cp.start()
        except Exception as e:  # noqa: BLE001 - a charger disconnecting is normal
            log.info("charge point %s disconnected: %s", cp_id, e)
        finally:
            if session.handler is cp:
                session.connected = False
                session.handler = None

    async def call(self, cp_id: str, message: Any) -> Any:
        s = self.sessions.get(cp_id)
        if s is None or not s.connected or s.handler is None:
            raise BusUnavailable(f"charge point {cp_id!r} is not connected")
        try:
            return await s.handler.call(message)
        except TimeoutError as e:
            from agent.errors import DeviceTimeout

            raise DeviceTimeout(f"charge point {cp_id!r} did not answer {type(message).__name__}") from e


def make_server(name: str, config: OcppLineConfig) -> OcppServer:
    return OcppServer(name, config)
