"""The status page's routes, served by :class:`~.http.HttpServer` inside the agent.

Reads (``GET``) are open to whoever reaches the address; every write goes through
:meth:`Sessions.authorise` (login + CSRF) and then the agent's command path, the same write gate and
audit as a command over MQTT (``source = "web"`` in the audit record).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..health_parts import HealthReport
from ..series import LatestValues, SeriesTable
from . import password
from .auth import Sessions
from .config_routes import MAX_CONFIG_BODY, ConfigEditor
from .history import History
from .http import HttpError, HttpServer, Request, Response
from .view import EventLog, latest_values, masked

if TYPE_CHECKING:
    from .config import WebConfig

log = logging.getLogger("edge_agent.web")
JSON = "application/json"
LANGS = ("en", "zh-CN")


class Host(Protocol):
    """What the agent offers the page."""

    series: SeriesTable
    latest: LatestValues
    site: Any
    remote: Any  # agent.remote.ops.RemoteOps: config changes go through its push path

    def health(self) -> HealthReport: ...
    def config_document(self) -> dict[str, Any]: ...
    def writable_points(self) -> dict[str, list[str]]: ...
    async def command(self, device: str, payload: bytes, *, source: str) -> dict[str, Any]: ...


def pick_language(req: Request) -> str:
    """``?lang=``, then the ``lang`` cookie, then the browser's Accept-Language (zh* -> zh-CN)."""
    for choice in (req.query.get("lang"), req.cookie("lang")):
        if choice in LANGS:
            return choice
    ranked = []
    for i, part in enumerate(req.headers.get("accept-language", "").split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            ranked.append((-float(q or 1), i, tag.strip().lower()))
        except ValueError:
            continue
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


def _json(doc: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(doc), JSON, headers or [])


class WebServer:
    def __init__(self, config: WebConfig, host: Host, *, event_log: EventLog, state_dir: Path):
        self.config = config
        self.host = host
        self.events = event_log
        self.state_dir = state_dir
        self.password_path = config.password_path(state_dir)
        self.sessions = Sessions(lifetime_s=config.session_minutes * 60)
        slots = max(2, int(config.history_minutes * 60 / config.history_step))
        self.history = History(len(host.series), slots=slots)
        self.http = HttpServer(self.handle, *config.address, body_limits={"/api/config": MAX_CONFIG_BODY})
        self.config_editor = ConfigEditor(host.remote, self.sessions)
        self._page = files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        self._sampler: asyncio.Task | None = None

    @property
    def port(self) -> int:
        return self.http.port

    async def start(self) -> None:
        try:
            await self.http.start()
        except OSError as e:
            raise OSError(e.errno, f"web page cannot listen on {self.config.listen}: {e.strerror or e}") from None
        self._sampler = asyncio.create_task(self._sample_loop(), name="web-history")
        log.info("web page on http://%s/", self.config.listen)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        await self.http.stop()

    async def _sample_loop(self) -> None:
        while True:
            try:
                self.history.sample(self.host.latest)
            except Exception:  # noqa: BLE001 - the charts may miss a sample; the agent goes on
                log.exception("web: sampling the chart history failed")
            await asyncio.sleep(self.config.history_step)

    # -- routes -------------------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        route = (req.method if req.method != "HEAD" else "GET", req.path)
        if route == ("GET", "/"):
            return self.page(req)
        if route == ("GET", "/api/state"):
            return _json(self.state(req))
        if route == ("GET", "/api/history"):
            return self.series_history(req)
        if route == ("GET", "/api/config"):
            return _json(masked(self.host.config_document()))
        if route == ("GET", "/api/config/file"):
            return _json(self.config_editor.view(req))
        if route == ("POST", "/api/config"):
            self._same_origin(req)
            status, answer = await self.config_editor.apply(req)
            return _json(answer, status)
        if route == ("POST", "/api/login"):
            return self.login(req)
        if route == ("POST", "/api/logout"):
            self.sessions.authorise(req)
            self.sessions.end(req)
            return _json({"ok": True}, headers=[("Set-Cookie", Sessions.cookie(None, 0))])
        if req.method == "POST" and req.path.startswith("/api/command/"):
            return await self.command(req, req.path.removeprefix("/api/command/"))
        if req.path in ("/", "/api/state", "/api/history", "/api/config", "/api/config/file", "/api/login",
                        "/api/logout") \
                or req.path.startswith("/api/command/"):
            raise HttpError(405, "method not allowed here")
        raise HttpError(404, "not found")

    def page(self, req: Request) -> Response:
        lang = pick_language(req)
        body = self._page.replace("{{LANG}}", lang).replace("{{REFRESH_MS}}", str(int(self.config.refresh * 1000)))
        return Response(200, body.encode(), "text/html; charset=utf-8",
                        [("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; "
                                                     "style-src 'unsafe-inline'; img-src 'self' data:"),
                         ("Vary", "Accept-Language, Cookie")])

    def state(self, req: Request) -> dict[str, Any]:
        session = self.sessions.current(req)
        site = self.host.site
        return {
            "now": int(time.time() * 1000),
            "refresh_ms": int(self.config.refresh * 1000),
            "health": self.host.health().to_wire(),
            "values": latest_values(self.host.series, self.host.latest),
            "events": list(self.events.items)[-30:][::-1],
            "site": None if site is None else {"allocations": dict(site.alloc), "failsafe": bool(site.failsafe)},
            "writable": self.host.writable_points(),
            "disk": self._disk(),
            "login": {"available": password.read_hash(self.password_path) is not None,
                      "csrf": session.csrf if session else None},
        }

    def _disk(self) -> dict[str, int] | None:
        """Free and total bytes where the outbox lives (what `doctor` checks), None when unknown."""
        try:
            usage = shutil.disk_usage(self.state_dir)
        except OSError:
            return None
        return {"free": usage.free, "total": usage.total}

    def series_history(self, req: Request) -> Response:
        try:
            sid = int(req.query.get("id", ""))
            since = int(req.query.get("since", "0"))
        except ValueError:
            raise HttpError(400, "id (a series number) and since (epoch ms) must be integers") from None
        if not 0 <= sid < len(self.host.series):
            raise HttpError(404, f"no series {sid}")
        ts, values = self.history.series(sid, since)
        s = self.host.series[sid]
        return _json({"id": sid, "device": s.device, "metric": s.metric, "unit": s.unit, "ts": ts, "value": values})

    def _same_origin(self, req: Request) -> None:
        origin = req.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != req.headers.get("host"):
            raise HttpError(403, "cross-origin request refused")

    def login(self, req: Request) -> Response:
        self._same_origin(req)
        now = time.monotonic()
        wait = self.sessions.limiter.retry_after(req.peer, now)
        if wait > 0:
            return _json({"error": f"too many failed logins: try again in {wait:.0f} s"}, 429,
                         [("Retry-After", str(int(wait) + 1))])
        stored = password.read_hash(self.password_path)
        if stored is None:
            return _json({"error": "no web password is set: run `edge-agent setup --web-password`"}, 403)
        try:
            given = orjson.loads(req.body).get("password")
        except (orjson.JSONDecodeError, AttributeError):
            given = None
        if not isinstance(given, str) or not password.verify(given, stored):
            self.sessions.limiter.failed(req.peer, now)
            log.warning("web: failed login from %s", req.peer)
            return _json({"error": "wrong password"}, 401)
        s = self.sessions.create()
        log.info("web: login from %s", req.peer)
        return _json({"csrf": s.csrf}, headers=[("Set-Cookie", Sessions.cookie(s, self.sessions.lifetime_s))])

    async def command(self, req: Request, device: str) -> Response:
        self._same_origin(req)
        self.sessions.authorise(req)
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as e:
            raise HttpError(400, f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        body = {k: v for k, v in body.items() if k not in ("id", "ts", "token")}
        body.update(id=f"web-{secrets.token_hex(8)}", ts=int(time.time() * 1000))
        result = await self.host.command(device, orjson.dumps(body), source="web")
        return _json(result)
