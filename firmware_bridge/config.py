"""The ``mcu_node`` device config (a model: pydantic, imported when validating); its points are in
:class:`.driver.McuNodeBase`, shared with the plain twin the run time reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import SerialDevice

from .driver import MAX_INTERVAL_MS, OUTPUT, McuNodeBase


class McuNodeConfig(McuNodeBase, SerialDevice):
    type: Literal["mcu_node"]
    line: str = Field(description="Name of a `serial` line (UART or RS-485).")
    address: int | None = Field(None, ge=1, le=254, description="Node address on a multi-drop RS-485 line; leave out on a point-to-point UART.")
    node_id: int | None = Field(None, ge=0, le=0xFFFF_FFFF, description="Expected node id; frames of another node are ignored.")
    wait: float = Field(0.3, gt=0, le=60, description="Seconds a poll waits for the node's frames.")
    sync_interval: float = Field(30.0, ge=1, le=3600, description="Seconds between time-sync exchanges.")
    max_time_error_ms: float = Field(100.0, gt=0, description="Readings whose mapped time is less certain are flagged estimated.")
    silent_after: float = Field(10.0, gt=0, description="Seconds without any frame before the node counts as down "
                                "(at least twice the sampling interval the node announces, plus `wait`).")
    describe_timeout: float = Field(3.0, ge=0, le=60, description="Seconds to wait at start for the node's description when none is cached.")
    writable: tuple[str, ...] = Field((), description='Points commands may write: "interval_ms" and "outputN" (0 or 1).')
    interval_bounds: tuple[int, int] = Field((100, 3_600_000), description="Allowed sampling interval (ms) for writes.")

    @field_validator("writable")
    @classmethod
    def _points(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if p != "interval_ms" and not OUTPUT.match(p)]
        if bad:
            raise ValueError(f"unknown writable point(s) {', '.join(map(repr, bad))}: use \"interval_ms\" or \"outputN\"")
        return v

    @model_validator(mode="after")
    def _wait_fits(self) -> McuNodeConfig:
        if self.wait >= self.timeout:
            raise ValueError(f"wait ({self.wait:g} s) must be shorter than timeout ({self.timeout:g} s)")
        lo, hi = self.interval_bounds
        if not 10 <= lo <= hi <= MAX_INTERVAL_MS:
            raise ValueError(f"interval_bounds must satisfy 10 <= low <= high <= {MAX_INTERVAL_MS}")
        return self
