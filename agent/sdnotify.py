"""sd_notify for Type=notify units: READY, STATUS, WATCHDOG, EXTEND_TIMEOUT_USEC, STOPPING. No-op outside systemd."""

from __future__ import annotations

import os
import socket

# The longest one step of the start-up may take before the next notice (loading the program and the
# config; opening the state directory and building the agent): ~40 s in all was seen on an emulated
# arm64 under CPUQuota=30 %. A notice extends the start timeout by this much; it never shortens it.
START_UP_S = 90.0


class Notifier:
    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET")
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]
        self._addr = addr
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_interval: float | None = int(usec) / 1e6 / 2 if usec and usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, *lines: str) -> None:
        if not self._addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self._addr)
                s.sendall("\n".join(lines).encode())
        except OSError:
            pass  # systemd gone or socket unavailable: never fatal

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *( [f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def extend_start(self, seconds: float, status: str) -> None:
        """Still starting: systemd's start timeout becomes ``seconds`` from now (systemd >= 236)."""
        self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}", f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
