"""A serial cable with faults: two ptys joined by a thread that drops, corrupts and duplicates bytes
at set rates, and optionally paces them to a baud rate (10 bits per byte, 8N1)."""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import threading
import time
import tty
from pathlib import Path

BACKLOG = 64  # bytes the cable holds in flight per direction


class LossyProxy:
    def __init__(self, gateway_link: Path, *, drop: float = 0.0, corrupt: float = 0.0, dup: float = 0.0,
                 baud: int | None = None, seed: int = 1):
        self.rates = (drop, corrupt, dup)
        self.byte_s = None if baud is None else 10.0 / baud
        self.rng = random.Random(seed)
        self.stats = dict.fromkeys(("bytes", "dropped", "corrupted", "duplicated"), 0)
        self._fds: list[int] = []
        self.node_master, self.node_path = self._pty()
        self.gw_master, gw_path = self._pty()
        self.link = gateway_link
        tmp = gateway_link.with_name(gateway_link.name + ".new")
        tmp.symlink_to(gw_path)
        os.replace(tmp, gateway_link)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._inject: list[bytes] = []

    def inject(self, data: bytes) -> None:
        """Bytes to the gateway as if the node had sent them (between the node's frames)."""
        self._inject.append(data)

    def _pty(self) -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds += [master, slave]  # the slave stays open: no hang-up when the other end closes it
        return master, os.ttyname(slave)

    def start(self) -> LossyProxy:
        self._thread.start()
        return self

    def _mangle(self, data: bytes) -> bytes:
        drop, corrupt, dup = self.rates
        out = bytearray()
        for b in data:
            self.stats["bytes"] += 1
            r = self.rng.random()
            if r < drop:
                self.stats["dropped"] += 1
                continue
            if r < drop + corrupt:
                b ^= 1 << self.rng.randrange(8)
                self.stats["corrupted"] += 1
            out.append(b)
            if self.rng.random() < dup:
                out.append(b)
                self.stats["duplicated"] += 1
        return bytes(out)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        peer = {self.node_master: self.gw_master, self.gw_master: self.node_master}
        pending = {fd: bytearray() for fd in peer}  # bytes waiting to go out on fd
        credit = dict.fromkeys(peer, 0.0)
        for fd in peer:
            sel.register(fd, selectors.EVENT_READ)
        last = time.monotonic()
        while not self._stop.is_set():
            for key, _ in sel.select(0.001):
                if len(pending[peer[key.fd]]) >= BACKLOG:
                    continue  # the sender waits, as on a real line (its pty buffer fills up)
                with contextlib.suppress(BlockingIOError, OSError):
                    pending[peer[key.fd]] += self._mangle(os.read(key.fd, BACKLOG))
            while self._inject:
                pending[self.gw_master] += self._inject.pop(0)
            now = time.monotonic()
            for fd, buf in pending.items():
                if not buf:
                    credit[fd] = 0.0
                    continue
                if self.byte_s is None:
                    n = len(buf)
                else:
                    credit[fd] = min(credit[fd] + (now - last) / self.byte_s, 64.0)
                    n = min(len(buf), int(credit[fd]))
                    credit[fd] -= n
                if n:
                    try:
                        written = os.write(fd, bytes(buf[:n]))
                    except (BlockingIOError, OSError):
                        written = n  # nobody reads this side: the bytes are gone, as on a real UART
                    del buf[:written]
            last = now

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()


class SharedLine:
    """A multi-drop line (as RS-485): what the gateway sends reaches every node, what a node sends
    reaches the gateway."""

    def __init__(self, gateway_link: Path, nodes: int):
        self._proxy = LossyProxy(gateway_link)  # reuse its pty handling for the gateway side
        self.link = gateway_link
        self.nodes = [self._proxy._pty() for _ in range(nodes)]
        self.node_paths = [path for _, path in self.nodes]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SharedLine:
        self._thread.start()
        return self

    def _run(self) -> None:
        gw = self._proxy.gw_master
        masters = [m for m, _ in self.nodes]
        sel = selectors.DefaultSelector()
        for fd in (gw, *masters):
            sel.register(fd, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.01):
                try:
                    data = os.read(key.fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                for dst in (masters if key.fd == gw else [gw]):
                    with contextlib.suppress(BlockingIOError, OSError):
                        os.write(dst, data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._proxy.stop()
