"""An asyncio event loop on virtual time, for tests that count events in a span of time.

The loop's clock advances only when nothing is ready to run: it jumps to the next timer. Sleeps and
timeouts then take no real time, and what happens in 0.5 s of loop time is the same on an idle
machine and on a loaded one. ``clock`` gives the code under test the same time (an injected Clock).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EPOCH_MS = 1_700_000_000_000


class _Selector:
    """Polls the real selector without blocking; with nothing to do before the next timer, the
    loop's clock jumps to it instead of waiting."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:  # no timer at all: only real I/O can wake the loop
            return self._real.select(None)
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_Selector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.now


class LoopClock:
    """The agent's Clock interface (agent.contract.driver.Clock) on a loop's time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def monotonic(self) -> float:
        return self.loop.time()

    def now_ms(self) -> int:
        return EPOCH_MS + int(self.loop.time() * 1000)


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
