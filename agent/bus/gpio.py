"""GPIO line kind ``gpio``: edge watching and input reads behind a small backend interface.

Backends: libgpiod v2 (``gpiod`` >= 2 from the ``pi`` extra, wheels included; every Pi with a kernel
>= 5.10, Pi 5 included, kernel event timestamps), else RPi.GPIO (or its drop-in rpi-lgpio; the
``rpi-gpio`` extra, built from source) for older kernels; any object with the :class:`GpioBackend` calls
can be handed to :class:`GpioBus` (the simulated chip of ``agent.simkit`` is one). Backend callbacks arrive on foreign threads; the bus hands
every edge to the event loop with ``call_soon_threadsafe``, so drivers only ever see the loop
thread. Kernel/driver debounce is never used: it drops edges silently; drivers debounce in
software and count what they reject.
"""

from __future__ import annotations

import asyncio
import enum
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..contract.gpio import Edge, EdgeCallback, Pull
from ..contract.lazy import lazy_exports
from ..errors import BusUnavailable

if TYPE_CHECKING:
    from ..contract.config import LineConfig
    from .gpio_config import GpioLineConfig

# the line's config model (pydantic) is in agent.bus.gpio_config, imported on first use
__getattr__ = lazy_exports(__name__, {"GpioLineConfig": "agent.bus.gpio_config"})


class GpioBackendKind(enum.StrEnum):
    AUTO = "auto"  # gpiod if present, else RPi.GPIO
    GPIOD = "gpiod"
    RPI = "rpi"


class GpioBackend(Protocol):
    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None: ...
    def unwatch(self, pin: int) -> None: ...
    def read(self, pin: int) -> int: ...
    def close(self) -> None: ...


class RpiGpioBackend:
    """RPi.GPIO (or rpi-lgpio, its drop-in replacement on Pi 5 / kernel >= 6.6), BCM numbering."""

    def __init__(self) -> None:
        try:
            import RPi.GPIO as GPIO  # noqa: N814 - raises RuntimeError (not ImportError) off a Pi
            GPIO.setmode(GPIO.BCM)
        except (ImportError, RuntimeError) as e:
            raise BusUnavailable(f"RPi.GPIO is not usable here: {e}") from None
        self.GPIO = GPIO
        self._pins: list[int] = []

    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None:
        G = self.GPIO
        pud = {Pull.UP: G.PUD_UP, Pull.DOWN: G.PUD_DOWN, Pull.OFF: G.PUD_OFF}[pull]
        G.setup(pin, G.IN, pull_up_down=pud)
        mode = {Edge.RISING: G.RISING, Edge.FALLING: G.FALLING, Edge.BOTH: G.BOTH}[edge]

        def on_edge(channel: int) -> None:  # runs on RPi.GPIO's own thread
            ts = time.monotonic_ns()
            level = 1 if edge is Edge.RISING else 0 if edge is Edge.FALLING else G.input(channel)
            callback(channel, level, ts)

        try:  # no bouncetime: RPi.GPIO would drop edges silently
            G.add_event_detect(pin, mode, callback=on_edge)
        except RuntimeError as e:
            raise BusUnavailable(f"RPi.GPIO cannot watch GPIO{pin}: {e} (on kernel >= 6.6 install rpi-lgpio)") from None
        self._pins.append(pin)

    def unwatch(self, pin: int) -> None:
        if pin in self._pins:
            self.GPIO.remove_event_detect(pin)

    def read(self, pin: int) -> int:
        if pin not in self._pins:
            self.GPIO.setup(pin, self.GPIO.IN)
            self._pins.append(pin)
        return int(self.GPIO.input(pin))

    def close(self) -> None:
        if self._pins:
            self.GPIO.cleanup(self._pins)
            self._pins.clear()


class GpiodBackend:
    """libgpiod v2 (``gpiod`` >= 2.0): one line request per watched pin, one reader thread."""

    def __init__(self, chip: str) -> None:
        try:
            import gpiod
        except ImportError as e:
            raise BusUnavailable(f"libgpiod python bindings (package 'gpiod') not installed: {e} "
                                  "(pip install 'edge-agent[pi]')") from None
        if not os.path.exists(chip):
            raise BusUnavailable(f"no GPIO chip {chip}")
        self.gpiod = gpiod
        self.chip = chip
        self._requests: dict[int, Any] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _settings(self, *, edge: Edge | None, pull: Pull) -> Any:
        g = self.gpiod
        bias = {Pull.UP: g.line.Bias.PULL_UP, Pull.DOWN: g.line.Bias.PULL_DOWN, Pull.OFF: g.line.Bias.DISABLED}[pull]
        kw: dict[str, Any] = {"direction": g.line.Direction.INPUT, "bias": bias}
        if edge is not None:
            kw["edge_detection"] = {Edge.RISING: g.line.Edge.RISING, Edge.FALLING: g.line.Edge.FALLING,
                                    Edge.BOTH: g.line.Edge.BOTH}[edge]
        return g.LineSettings(**kw)

    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None:
        g = self.gpiod
        try:
            req = g.request_lines(self.chip, consumer="edge-agent", config={pin: self._settings(edge=edge, pull=pull)})
        except OSError as e:
            raise BusUnavailable(f"cannot request GPIO{pin} on {self.chip}: {e}") from None
        self._requests[pin] = req
        rising = g.EdgeEvent.Type.RISING_EDGE

        def pump() -> None:
            try:
                while not self._stop.is_set():
                    if req.wait_edge_events(0.2):
                        for ev in req.read_edge_events():
                            callback(ev.line_offset, 1 if ev.event_type == rising else 0, ev.timestamp_ns)
            except (OSError, ValueError):  # request released (unwatch/close)
                return

        t = threading.Thread(target=pump, daemon=True, name=f"gpiod-{pin}")
        t.start()
        self._threads.append(t)

    def unwatch(self, pin: int) -> None:
        req = self._requests.pop(pin, None)
        if req is not None:
            req.release()  # its pump thread sees the error and the stop flag at close

    def read(self, pin: int) -> int:
        req = self._requests.get(pin)
        if req is None:
            req = self._requests[pin] = self.gpiod.request_lines(
                self.chip, consumer="edge-agent", config={pin: self._settings(edge=None, pull=Pull.OFF)})
        return 1 if req.get_value(pin) == self.gpiod.line.Value.ACTIVE else 0

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1)
        for req in self._requests.values():
            req.release()
        self._requests.clear()


def make_backend(cfg: GpioLineConfig) -> GpioBackend:
    kind = cfg.backend
    if kind is GpioBackendKind.GPIOD:
        return GpiodBackend(cfg.chip)
    if kind is GpioBackendKind.RPI:
        return RpiGpioBackend()
    errors = []
    for factory in (lambda: GpiodBackend(cfg.chip), RpiGpioBackend):
        try:
            return factory()
        except BusUnavailable as e:
            errors.append(str(e))
    raise BusUnavailable("no usable GPIO backend: " + "; ".join(errors))


class GpioBus:
    """The ``gpio`` line: creates its backend on open and delivers edges on the event loop."""

    def __init__(self, name: str, config: LineConfig, *, backend: GpioBackend | None = None):
        self.name = name
        self.config = config
        self.backend = backend
        self.edges_delivered = 0

    async def open(self) -> None:
        if self.backend is None:
            self.backend = await asyncio.to_thread(make_backend, self.config)  # type: ignore[arg-type]

    def watch(self, pin: int, edge: Edge, callback: EdgeCallback, *, pull: Pull = Pull.OFF) -> None:
        """Call ``callback(pin, level, ts_ns)`` on the event loop thread for every edge."""
        if self.backend is None:
            raise BusUnavailable(f"gpio line {self.name} is not open")
        loop = asyncio.get_running_loop()

        def from_thread(p: int, level: int, ts: int) -> None:
            try:
                loop.call_soon_threadsafe(deliver, p, level, ts)
            except RuntimeError:  # loop closed during shutdown
                pass

        def deliver(p: int, level: int, ts: int) -> None:
            self.edges_delivered += 1
            callback(p, level, ts)

        self.backend.watch(pin, edge, from_thread, pull=pull)

    def unwatch(self, pin: int) -> None:
        if self.backend is not None:
            self.backend.unwatch(pin)

    def read(self, pin: int) -> int:
        if self.backend is None:
            raise BusUnavailable(f"gpio line {self.name} is not open")
        return self.backend.read(pin)

    def stats(self) -> dict[str, Any]:
        return {"backend": type(self.backend).__name__ if self.backend else None, "edges": self.edges_delivered}

    async def close(self) -> None:
        if self.backend is not None:
            await asyncio.to_thread(self.backend.close)
            self.backend = None


def make_gpio_bus(name: str, config: GpioLineConfig) -> GpioBus:
    return GpioBus(name, config)
