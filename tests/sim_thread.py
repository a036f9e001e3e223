"""Device simulators served from a background thread with its own event loop, so a test can drive
the agent as a real subprocess (``edge-agent run --once``, ``doctor``) against them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent.driver import discover_simulators


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def simulator(name: str, **kwargs: Any) -> Iterator[Any]:
    """``with simulator("sdm630", tcp="127.0.0.1:PORT", update_interval=None) as handle:``"""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"sim-{name}", daemon=True)
    thread.start()
    handle = asyncio.run_coroutine_threadsafe(discover_simulators()[name].start(**kwargs), loop).result(30)
    try:
        yield handle
    finally:
        asyncio.run_coroutine_threadsafe(handle.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
