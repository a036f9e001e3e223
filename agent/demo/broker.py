"""An embedded MQTT broker (amqtt) for the demo and for a gateway with no broker configured.

amqtt is slow (a few hundred QoS 1 messages/s): fine for a demo, never the production path.
"""

from __future__ import annotations

import logging
import socket
import warnings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._broker = None

    async def start(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from amqtt.broker import Broker

            for name in ("amqtt", "transitions"):
                logging.getLogger(name).setLevel(logging.ERROR)
            cfg = {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "sys_interval": 0,
                "auth": {"allow-anonymous": True},
                "topic-check": {"enabled": False},
            }
            self._broker = Broker(cfg)
            await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    @property
    def running(self) -> bool:
        return self._broker is not None
