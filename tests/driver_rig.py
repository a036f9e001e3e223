"""A driver opened on a simulator for the span of a ``with`` block (tests/drivers/): built through the
conformance kit as the agent builds it, closed with its bus pool afterwards, even on failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agent.simkit.conformance import SimDevice, build_driver


@asynccontextmanager
async def opened(spec: Any, sim: SimDevice, state_dir: Path, *,
                 prepare: Callable[[Any], None] | None = None) -> AsyncIterator[Any]:
    """``async with opened(SPEC, SimDevice(...), tmp_path / "state") as driver:``; ``prepare(driver)``
    runs before ``open()`` (e.g. to give the driver a clock)."""
    driver, pool = build_driver(spec, sim, state_dir)
    try:
        if prepare is not None:
            prepare(driver)
        await driver.open()
        yield driver
    finally:
        await driver.close()
        await pool.close()
