"""A small HTTP/1.1 server on asyncio streams: one request per connection, bounded in size and time.

No framework and no dependency: the status page needs a handful of routes, and the agent's memory
matters more (see tests/bench/bench_web.py for the figures against aiohttp). A slow or hostile client
cannot hold the agent's loop: headers, body and the whole exchange have limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("edge_agent.web")
MAX_HEADER_BYTES = 8192
MAX_BODY_BYTES = 16384
READ_TIMEOUT_S = 5.0
REASONS = {200: "OK", 204: "No Content", 303: "See Other", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""
    peer: str = ""

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, *, head: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}",
                 f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}", "Connection: close",
                 *(f"{k}: {v}" for k, v in (*SECURITY_HEADERS, *self.headers))]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else self.body)


Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status


def parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    url = urlsplit(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    return Request(parts[0], unquote(url.path), query, headers)


class HttpServer:
    """Serves ``handler`` on (host, port); ``start`` raises OSError naming a busy address."""

    def __init__(self, handler: Handler, host: str, port: int, *, body_limits: dict[str, int] | None = None):
        self.handler = handler
        self.body_limits = body_limits or {}  # path -> largest body it takes (others: MAX_BODY_BYTES)
        self.host, self.want_port = host, port
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.want_port, limit=MAX_HEADER_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _read(self, reader: asyncio.StreamReader, peer: str) -> Request:
        head = await reader.readuntil(b"\r\n\r\n")
        req = parse_head(head)
        req.peer = peer
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            raise HttpError(400, "chunked bodies are not accepted: send Content-Length")
        length = req.headers.get("content-length", "0")
        if not length.isdigit():
            raise HttpError(400, "bad Content-Length")
        limit = self.body_limits.get(req.path, MAX_BODY_BYTES)
        if int(length) > limit:
            raise HttpError(413, f"body over {limit} bytes")
        req.body = await reader.readexactly(int(length)) if int(length) else b""
        return req

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("",))[0])
        head_only = False
        try:
            try:
                req = await asyncio.wait_for(self._read(reader, peer), READ_TIMEOUT_S)
                head_only = req.method == "HEAD"
                resp = await self.handler(req)
                self.requests += 1
            except HttpError as e:
                resp = Response(e.status, f"{e}\n".encode())
            except (asyncio.LimitOverrunError, ValueError):
                resp = Response(400, b"request head too large or malformed\n")
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            except Exception:  # noqa: BLE001 - a failing page must not stop the agent
                log.exception("web: handling a request failed")
                resp = Response(500, b"internal error\n")
            writer.write(resp.encode(head=head_only))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
