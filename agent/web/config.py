"""The ``[web]`` section: a local status page, off by default and bound to loopback."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ..contract import Frozen
from .listen import DEFAULT_LISTEN, PASSWORD_FILE, WebBase, split_listen


class WebConfig(WebBase, Frozen):
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


__all__ = ["DEFAULT_LISTEN", "PASSWORD_FILE", "WebConfig", "split_listen"]
