"""Drivers that misbehave on cancellation, registered for an agent subprocess as a third-party
plugin would be (a distribution's ``edge_agent.drivers`` entry points; see tests/chaos/test_shutdown.py).

- ``swallow_cancel``: each read swallows a cancellation and returns its reading anyway, which is
  what ``asyncio.wait_for`` does on Python 3.11 when the awaited reply is already there (pymodbus
  awaits every reply that way). Each value returned is recorded, so a test can check it was committed.
- ``never_returns``: a read that swallows every cancellation and never returns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from agent.config.schema import DeviceConfig
from agent.driver import DriverContext, DriverSpec
from agent.model import MetricSpec, Sample


class SwallowCancelConfig(DeviceConfig):
    type: Literal["swallow_cancel"]


class NeverReturnsConfig(DeviceConfig):
    type: Literal["never_returns"]


class SwallowCancelDriver:
    def __init__(self, config: SwallowCancelConfig, ctx: DriverContext):
        self.record = Path(ctx.state_dir) / f"{config.name}.returned"
        self.count = 0

    def metrics(self) -> list[MetricSpec]:
        return [MetricSpec("count")]

    async def open(self) -> None:
        return None

    async def read(self) -> list[Sample]:
        try:
            await asyncio.sleep(0.05)  # the reply on a busy line
        except asyncio.CancelledError:
            pass  # swallowed, as asyncio.wait_for does when the reply is already there
        self.count += 1
        with open(self.record, "a") as fh:
            fh.write(f"{self.count}\n")
        return [Sample("count", float(self.count))]

    async def close(self) -> None:
        return None


class NeverReturnsDriver(SwallowCancelDriver):
    async def read(self) -> list[Sample]:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue


SWALLOW_CANCEL = DriverSpec(type="swallow_cancel", config_model=SwallowCancelConfig, factory=SwallowCancelDriver,
                            summary="Test driver: swallows a cancellation on every read.")
NEVER_RETURNS = DriverSpec(type="never_returns", config_model=NeverReturnsConfig, factory=NeverReturnsDriver,
                           summary="Test driver: a read that never returns, whatever is cancelled.")
