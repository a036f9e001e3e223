"""A tiny HTTP/1.1 server for ``GET /metrics`` on asyncio streams (no web framework, no dependency).

Each request is answered and the connection closed. Requests are bounded in size and time, so a
slow or hostile client cannot hold the agent's loop; anything but ``GET``/``HEAD /metrics`` gets a
plain 404 or 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from .adapter import families_from_health
from .config import MetricsConfig
from .exposition import CONTENT_TYPE, render

log = logging.getLogger("edge_agent.metrics")
MAX_HEADER_BYTES = 8192
READ_TIMEOUT_S = 5.0


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", *, head: bool = False) -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n")
    return headers.encode() + (b"" if head else body)


class MetricsServer:
    """Serves ``render(families_from_health(health()))`` on the configured address."""

    def __init__(self, config: MetricsConfig, health: Callable[[], object]):
        self.config = config
        self.health = health
        self._server: asyncio.AbstractServer | None = None
        self.scrapes = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Listen. Raises OSError naming the address when it is busy or not available."""
        host, port = self.config.address
        try:
            self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEADER_BYTES)
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)
            raise OSError(e.errno, f"metrics endpoint cannot listen on {self.config.listen}: {reason}") from None
        log.info("metrics endpoint on http://%s/metrics", self.config.listen)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def body(self) -> bytes:
        return render(families_from_health(self.health())).encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if path != "/metrics":
                reply = _response("404 Not Found", b"only /metrics is served here\n")
            elif method not in ("GET", "HEAD"):
                reply = _response("405 Method Not Allowed", b"use GET\n")
            else:
                try:
                    reply = _response("200 OK", self.body(), CONTENT_TYPE, head=method == "HEAD")
                    self.scrapes += 1
                except Exception:  # noqa: BLE001 - a failing scrape must not stop the agent
                    log.exception("metrics: building the response failed")
                    reply = _response("500 Internal Server Error", b"health figures unavailable\n")
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError):
            pass  # a client that went away or sent garbage gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
