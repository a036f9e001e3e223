"""A simulated GPIO chip, and the ``gpio_sim`` line kind that puts one behind a GPIO line.

Edges are delivered from a separate thread, like the real backends do, so drivers see the same
threading as on a Pi. ``pulse_train`` stamps edges with their scheduled times, so debounce
outcomes in tests do not depend on thread scheduling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent.bus.gpio import GpioBus
from agent.contract.gpio import Edge, EdgeCallback, Pull
from agent.contract.lazy import lazy_exports
from agent.contract.lines import LineKind

if TYPE_CHECKING:
    from .gpio_config import GpioSimLineConfig

# the line's config model (pydantic) is in agent.simkit.gpio_config, imported on first use
__getattr__ = lazy_exports(__name__, {"GpioSimLineConfig": "agent.simkit.gpio_config"})


def _edge_matches(edge: Edge, level: int) -> bool:
    return edge is Edge.BOTH or (edge is Edge.RISING) == bool(level)


class SimGpioBackend:
    """A simulated GPIO chip. Edges are delivered from a separate thread, like real backends."""

    def __init__(self, *, pulse_hz: dict[int, float] | None = None):
        self._levels: dict[int, int] = {}
        self._watch: dict[int, tuple[Edge, EdgeCallback]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pin_time: dict[int, int] = {}  # end of the last scheduled pulse train per pin
        for pin, hz in (pulse_hz or {}).items():
            self._levels.setdefault(pin, 1)
            self._spawn(self._periodic, pin, hz)

    def _spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=args, daemon=True, name="sim-gpio")
        t.start()
        self._threads.append(t)
        return t

    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None:
        with self._lock:
            self._levels.setdefault(pin, 0 if pull is Pull.DOWN else 1)
            self._watch[pin] = (edge, callback)

    def unwatch(self, pin: int) -> None:
        with self._lock:
            self._watch.pop(pin, None)

    def read(self, pin: int) -> int:
        with self._lock:
            return self._levels.get(pin, 0)

    def _set(self, pin: int, level: int, ts_ns: int) -> None:
        with self._lock:
            if self._levels.get(pin) == level:
                return
            self._levels[pin] = level
            w = self._watch.get(pin)
        if w and _edge_matches(w[0], level):
            w[1](pin, level, ts_ns)

    def set_level(self, pin: int, level: int) -> None:
        """Drive a pin (from any thread); watchers see the edge."""
        self._set(pin, 1 if level else 0, time.monotonic_ns())

    def pulse_train(self, pin: int, offsets: Sequence[float], *, width: float = 0.001,
                    realtime: bool = False) -> threading.Thread:
        """Pulse ``pin`` low (falling then rising edge) at each offset (s); returns the delivering thread.

        Edge timestamps are the scheduled times, so debounce outcomes do not depend on thread
        scheduling; with ``realtime`` the thread also waits until each time comes.
        """
        return self._spawn(self._train, pin, list(offsets), width, realtime)

    def _train(self, pin: int, offsets: list[float], width: float, realtime: bool) -> None:
        with self._lock:  # a train starts at least 1 s (simulated) after the previous one on this pin
            t0 = max(time.monotonic_ns(), self._pin_time.get(pin, 0) + 1_000_000_000)
            self._pin_time[pin] = t0 + int((max(offsets, default=0) + width) * 1e9)
        for off in sorted(offsets):
            at = t0 + int(off * 1e9)
            if realtime:
                delay = (at - time.monotonic_ns()) / 1e9
                if delay > 0 and self._stop.wait(delay):
                    return
            self._set(pin, 0, at)
            self._set(pin, 1, at + int(width * 1e9))

    def _periodic(self, pin: int, hz: float) -> None:
        period = 1.0 / hz
        while not self._stop.wait(period):
            now = time.monotonic_ns()
            self._set(pin, 0, now)
            self._set(pin, 1, now + 1_000_000)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)
        self._watch.clear()


def make_gpio_sim_bus(name: str, config: GpioSimLineConfig) -> GpioBus:
    return GpioBus(name, config, backend=SimGpioBackend(pulse_hz=config.pulse_hz))


GPIO_SIM_LINE = LineKind("agent.simkit.gpio_config:GpioSimLineConfig", make_gpio_sim_bus,
                         "A GPIO line on a simulated chip whose pins can pulse by themselves (demos, tests)")
