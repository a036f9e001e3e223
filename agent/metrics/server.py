"""A tiny HTTP/1.1 server for ``GET /metrics`` on asyncio streams (no web framework, no dependency).

Each request is answered and the connection closed. Requests are bounded in size and time, so a
slow or hostile client cannot hold the agent's loop; anything but ``GET``/``HEAD /metrics`` gets a
plain 404 or 405.

The endpoint is a side feature and must never take what the uplink needs. At most
``MAX_CONNECTIONS`` connections are open at once: further clients wait in the kernel's listen queue
(accepting stops), so a local client holding a thousand connections costs the agent a handful of file
descriptors. Nothing is accepted either while fewer than ``FD_RESERVE`` descriptors are left under the
process limit, whoever used them; an accept that fails for lack of descriptors pauses the endpoint for
a second, said once in the log, not as a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from .adapter import families_from_health
from .exposition import CONTENT_TYPE, render

if TYPE_CHECKING:
    from .config import MetricsConfig

log = logging.getLogger("edge_agent.metrics")
MAX_HEADER_BYTES = 8192
READ_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 8  # open at once; a scraper needs one
FD_RESERVE = 64  # descriptors always left for the uplink, the outbox and the devices
PAUSE_S = 1.0  # how long accepting pauses when descriptors run short
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def fds_left() -> int | None:
    """File descriptors this process may still open (None when it cannot be told)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return soft - len(os.listdir("/proc/self/fd")) if soft != resource.RLIM_INFINITY else None
    except OSError:
        return None


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", *, head: bool = False) -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n")
    return headers.encode() + (b"" if head else body)


class MetricsServer:
    """Serves ``render(families_from_health(health()))`` on the configured address."""

    def __init__(self, config: MetricsConfig, health: Callable[[], object]):
        self.config = config
        self.health = health
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._clients: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._paused = False  # accepting paused for lack of descriptors (logged once per episode)
        self.scrapes = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._sock is not None
        return self._sock.getsockname()[1]

    async def start(self) -> None:
        """Listen. Raises OSError naming the address when it is busy or not available."""
        host, port = self.config.address
        try:
            info = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, addr = info[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(addr)
                sock.listen(MAX_CONNECTIONS)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)
            raise OSError(e.errno, f"metrics endpoint cannot listen on {self.config.listen}: {reason}") from None
        self._sock = sock
        self._accepting = asyncio.create_task(self._accept_loop(), name="metrics")
        log.info("metrics endpoint on http://%s/metrics", self.config.listen)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._accepting, 2)
            self._accepting = None
        for task in list(self._clients):
            task.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            await self._slots.acquire()  # at the cap: new clients wait in the listen queue
            left = fds_left()
            if left is not None and left < FD_RESERVE:
                self._pause(f"{left} file descriptors left under the process limit")
                self._slots.release()
                await asyncio.sleep(PAUSE_S)
                continue
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as e:
                self._slots.release()
                if e.errno not in _OUT_OF_FDS:
                    continue  # a client that went away before it was accepted
                self._pause(os.strerror(e.errno))
                await asyncio.sleep(PAUSE_S)
                continue
            if self._paused:
                log.info("metrics endpoint accepting connections again")
                self._paused = False
            task = asyncio.create_task(self._serve(conn))
            self._clients.add(task)
            task.add_done_callback(self._done)

    def _pause(self, why: str) -> None:
        if not self._paused:
            log.warning("metrics endpoint paused (%s): scrapes wait, the uplink and devices keep their "
                        "descriptors", why)
        self._paused = True

    def _done(self, task: asyncio.Task) -> None:
        self._clients.discard(task)
        self._slots.release()

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=MAX_HEADER_BYTES)
        except OSError:
            conn.close()
            return
        await self._handle(reader, writer)

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
