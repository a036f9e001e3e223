"""The gateway's (or the simulator's) BACnet/IP endpoint: a bacpypes3 application, imported on use."""

from __future__ import annotations

import socket
from argparse import Namespace
from typing import Any


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_app(name: str, instance: int, address: str, *, foreign: str | None = None, ttl: int = 30,
             bbmd: str | None = None) -> Any:
    """A bacpypes3 application (device object + network port) bound to ``address`` (host:port)."""
    from bacpypes3.app import Application

    return Application.from_args(Namespace(name=name, instance=instance, address=address, vendoridentifier=999,
                                           network=0, foreign=foreign, ttl=ttl, bbmd=bbmd))
