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


class SharedApps:
    """One BACnet/IP application per local address, shared by the devices that use it (two devices
    cannot each bind UDP 47808). The devices sharing one must agree on its identity."""

    def __init__(self) -> None:
        self.apps: dict[str, tuple[Any, tuple, int]] = {}  # address -> (app, identity, users)
        self.next_process_id = 1

    def acquire(self, name: str, instance: int, address: str, *, foreign: str | None, ttl: int) -> Any:
        identity = (instance, foreign, ttl)
        held = self.apps.get(address)
        if held is not None:
            app, have, users = held
            if have != identity:
                raise ValueError(f"local_address {address} is already in use by a device with local_instance "
                                 f"{have[0]}, foreign_bbmd {have[1]!r}, foreign_ttl {have[2]}: devices sharing a "
                                 "local address need the same three")
            self.apps[address] = (app, have, users + 1)
            return app
        app = make_app(name, instance, address, foreign=foreign, ttl=ttl)
        self.apps[address] = (app, identity, 1)
        return app

    def release(self, address: str) -> None:
        app, identity, users = self.apps[address]
        if users > 1:
            self.apps[address] = (app, identity, users - 1)
        else:
            del self.apps[address]
            app.close()

    def process_id(self) -> int:
        """A COV subscriber process identifier unique in this gateway."""
        pid, self.next_process_id = self.next_process_id, self.next_process_id % ((1 << 22) - 1) + 1
        return pid


SHARED = SharedApps()
