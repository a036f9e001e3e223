"""A pymodbus Modbus TCP server that treats several outstanding requests the way a chosen kind of device does.

Modbus TCP allows a client several transactions outstanding on one connection; how many a server
takes (the Messaging Implementation Guide's NumberMaxOfServerTransaction) is the device's choice:

- ``queue``: every request answered, in order (devices and gateways with a request queue);
- ``first``: the first request of a TCP segment answered, the rest of it and anything arriving while
  one is outstanding dropped (small embedded stacks; pymodbus's own server answers one request per
  segment);
- ``close``: the connection closed when a request arrives while one is outstanding.

pymodbus's server handles one frame per received segment; here the segment is split into frames and
each is handed to it after the previous one was answered.
"""

from __future__ import annotations

import enum
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler


class Pipelining(enum.StrEnum):
    QUEUE = "queue"
    FIRST = "first"
    CLOSE = "close"


def tcp_server(devices: Any, address: tuple[str, int], *, pipelining: Pipelining | str = Pipelining.QUEUE,
               **kw: Any) -> ModbusTcpServer:
    """A ``ModbusTcpServer`` serving ``devices`` on ``address`` (other keywords as pymodbus's)."""
    server = _Server(devices, address=address, **kw)
    server.pipelining = Pipelining(pipelining)
    return server


class _Server(ModbusTcpServer):
    pipelining = Pipelining.QUEUE
    most_outstanding = 0  # the most requests a connection had received and not yet answered at once

    def callback_new_connection(self) -> ServerRequestHandler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


def _frame_len(buf: bytes) -> int:
    """Length of the complete MBAP frame at the start of ``buf``, 0 if it is not all there."""
    if len(buf) < 7:
        return 0
    n = 6 + int.from_bytes(buf[4:6], "big")
    return n if len(buf) >= n else 0


def _count(buf: bytes) -> int:
    n = 0
    while k := _frame_len(buf):
        n, buf = n + 1, buf[k:]
    return n


class _Handler(ServerRequestHandler):
    def __init__(self, *args: Any):
        super().__init__(*args)
        self._rx = b""
        self._busy = False  # a request handed to pymodbus is not answered yet

    def datagram_received(self, data: bytes, addr: tuple | None) -> None:
        self._rx += data
        if len(self._rx) >= 6 and (self._rx[2:4] != b"\0\0" or int.from_bytes(self._rx[4:6], "big") > 254):
            self._rx = b""  # not MBAP: nothing after it can be framed
            return
        server = self.server
        server.most_outstanding = max(server.most_outstanding, self._busy + _count(self._rx))
        if server.pipelining is Pipelining.FIRST:
            if self._busy:
                self._rx = b""  # dropped
            elif n := _frame_len(self._rx):
                self._rx = self._rx[:n]  # the rest of the segment is dropped
        elif server.pipelining is Pipelining.CLOSE and (self._busy + _count(self._rx)) > 1:
            self.close()
            return
        self._feed(addr)

    def _feed(self, addr: tuple | None) -> None:
        while not self._busy and (n := _frame_len(self._rx)):
            frame, self._rx = self._rx[:n], self._rx[n:]
            self._busy = True
            super().datagram_received(frame, addr)
            if not self.last_pdu:  # answered at once (undecodable) or nothing to answer
                self._busy = False

    async def handle_request(self) -> None:
        try:
            await super().handle_request()
        finally:
            self._busy = False
            self._feed(self.last_addr)
