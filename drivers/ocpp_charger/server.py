"""The OCPP 1.6J local central system: a websocket server (line kind ``ocpp``) chargers connect to.

Registered in the ``edge_agent.lines`` entry-point group as ``ocpp`` (:data:`LINE`).

Charge points connect to ``ws://gateway:port/<chargePointId>`` with subprotocol ``ocpp1.6``. Only ids
configured as devices are accepted. Everything a charge point reports (BootNotification, Heartbeat,
StatusNotification, MeterValues, Start/StopTransaction) lands in its :class:`Session`, which the
driver reads; the driver's writes become RemoteStart/StopTransaction and SetChargingProfile calls.
The ``ocpp`` and ``websockets`` packages are imported only when such a line is used.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.contract import BusUnavailable, DeviceTimeout, LineKind

from .session import Session
from .txstore import TxStore

if TYPE_CHECKING:
    from .config import OcppLineConfig

log = logging.getLogger(__name__)


class OcppServer:
    def __init__(self, name: str, config: OcppLineConfig):
        self.name = name
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.store: TxStore | None = None
        self._server: Any = None
        self._lock = asyncio.Lock()

    def register(self, cp_id: str, state_dir: Path | None = None) -> Session:
        """The session of charge point ``cp_id``, with the transactions it had running when the agent
        last stopped (kept in ``state_dir``; None keeps them in memory only)."""
        if self.store is None:
            self.store = TxStore(None if state_dir is None else Path(state_dir) / f"ocpp-{self.name}.json")
        return self.sessions.setdefault(cp_id, Session(cp_id, store=self.store))

    async def open(self) -> None:
        async with self._lock:
            if self._server is not None:
                return
            if self.store is not None and not self.store.loaded:
                self.store.load()
                for session in self.sessions.values():
                    session.restore()
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
        from .central import CentralSystemSide  # imports the ocpp package: only once a charger connects

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
            raise DeviceTimeout(f"charge point {cp_id!r} did not answer {type(message).__name__}") from e


def make_server(name: str, config: OcppLineConfig) -> OcppServer:
    return OcppServer(name, config)


LINE = LineKind("drivers.ocpp_charger.config:OcppLineConfig", make_server, "OCPP 1.6J local central system (websocket server chargers connect to)")
