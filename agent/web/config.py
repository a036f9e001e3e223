"""The ``[web]`` section: a local status page, off by default and bound to loopback."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ..contract import Frozen

DEFAULT_LISTEN = "127.0.0.1:8080"
PASSWORD_FILE = "web-password"  # in the state directory unless password_file names another place


def split_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port). Raises ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"{text!r} names no host: give 127.0.0.1 (this machine only) or a LAN address")
    return host, int(port)


class WebConfig(Frozen):
    enabled: bool = Field(False, description="Serve the status page on http://LISTEN/.")
    listen: str = Field(DEFAULT_LISTEN, description="HOST:PORT to listen on: loopback unless you name a LAN address "
                                                    "(the page is read-only without a login).")
    refresh: float = Field(2.0, ge=0.5, le=60, description="Seconds between the page's updates.")
    history_minutes: int = Field(60, ge=1, le=1440, description="Minutes of each metric kept in memory for charts.")
    history_step: float = Field(10.0, ge=1, le=600, description="Seconds between chart samples (memory: one "
                                                                "sample per metric per step).")
    password_file: Path | None = Field(None, description="The login's password hash (written by `edge-agent setup "
                                                          "--web-password`); default: web-password in the state "
                                                          "directory. Without it the page stays read-only.")
    session_minutes: int = Field(30, ge=1, le=1440, description="A login lasts this long without use.")

    @field_validator("listen")
    @classmethod
    def _listen_ok(cls, v: str) -> str:
        split_listen(v)
        return v

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    def password_path(self, state_dir: Path) -> Path:
        return self.password_file or state_dir / PASSWORD_FILE
