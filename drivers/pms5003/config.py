"""The ``pms5003`` device config (a model: pydantic, imported when validating)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.contract import SerialDevice

from .driver import Pms5003Mode


class Pms5003Config(SerialDevice):
    type: Literal["pms5003"]
    line: str = Field(description="Name of a `serial` line (9600 8N1).")
    mode: Pms5003Mode = Pms5003Mode.PASSIVE
    timeout: float = Field(3.0, gt=0, le=600, description="Seconds to wait for a frame (active mode sends one every <= 2.3 s).")
