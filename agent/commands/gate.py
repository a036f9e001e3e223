"""The one door to the physical world: every write to a device goes through a :class:`WriteGate`.

Commands, the site controller and any future scheduler ask the gate. It checks one thing, the
device's declaration of its points (:class:`agent.contract.DeclaresPoints`): the point is declared
and writable (``writable = [...]`` in config), the value fits the point's kind and bounds; then that
the device is not written more than ``WRITE_LIMIT`` times per ``WRITE_WINDOW_S``; then it writes
through the driver's ``write(point, value)`` (:class:`agent.contract.PointControl`) with a timeout.
Every write it is asked for is audited, whatever the outcome: who asked (a command id, the site
controller), what, and what happened.

Out-of-bounds values are refused for commands (the sender is told) and clamped for automatic writers
(``Writer.clamp``): above the maximum to the maximum, below the minimum to the point's ``below_low``
(a charger's current limit: 0, pause) when it declares one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.contract import Clock
from agent.contract.points import DeclaresPoints, Point, PointControl, aliases_of
from agent.errors import DeviceError, DeviceTimeout

from .parse import Code, Refusal
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

WRITE_LIMIT = 120  # writes per device per window, whoever asks: guards a device against a runaway writer
WRITE_WINDOW_S = 60.0
DEFAULT_BOUNDS = (6.0, 32.0)

AuditSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Writer:
    """Who asks for a write. ``clamp``: out-of-bounds values are clamped instead of refused (automatic writers)."""

    source: str  # "command", "site", ...
    ref: str | None = None  # the command id, for commands
    clamp: bool = False

    @classmethod
    def command(cls, cmd_id: str) -> Writer:
        return cls("command", cmd_id)


SITE = Writer("site", clamp=True)


class WriteGate:
    def __init__(
        self,
        devices: Mapping[str, object],  # device name -> its config
        drivers: Mapping[str, object],  # device name -> driver
        clock: Clock,
        *,
        timeout: float = 10.0,
        audit: AuditSink | None = None,
    ):
        self.devices = dict(devices)
        self.drivers = dict(drivers)
        self.clock = clock
        self.timeout = timeout
        self.audit = audit or (lambda record: None)
        self.limiter = RateLimiter(limit=WRITE_LIMIT, window=WRITE_WINDOW_S)

    def points(self, device: str) -> dict[str, Point]:
        """Every point the config of ``device`` declares, by name."""
        cfg = self.devices.get(device)
        return {p.name: p for p in cfg.points()} if isinstance(cfg, DeclaresPoints) else {}

    def declared(self, device: str) -> dict[str, Point]:
        """The points declared writable for ``device``."""
        return {n: p for n, p in self.points(device).items() if p.writable}

    def writable(self, device: str) -> tuple[str, ...]:
        return tuple(self.declared(device))

    def aliases(self, device: str) -> Mapping[str, str]:
        """Command actions the config of ``device`` declares as writing one of its points."""
        return aliases_of(self.devices.get(device))

    def bounds(self, device: str, point: str = "current_limit") -> tuple[float, float]:
        """[low, high] a write to ``point`` of ``device`` may carry."""
        p = self.points(device).get(point)
        if p is None or p.low is None or p.high is None:
            return DEFAULT_BOUNDS
        return p.low, p.high

    def check(self, device: str, point: str, value: float | None, writer: Writer) -> float | None:
        """The value a write of ``value`` to ``point`` would apply; raises :class:`Refusal` if it may not happen."""
        p = self.declared(device).get(str(point))
        if p is None:
            raise Refusal(Code.NOT_WRITABLE, f"{str(point)!r} is not declared writable for {device!r}")
        if value is None and p.takes_value:
            raise Refusal(Code.MALFORMED, f"{p.name} needs a value" + (f" in {p.unit}" if p.unit else ""))
        if value is not None and not p.takes_value:
            raise Refusal(Code.MALFORMED, f"{p.name} takes no value")
        applied = p.clamp(value) if writer.clamp and value is not None else value
        paused = writer.clamp and applied is not None and applied == p.below_low
        if not paused and (why := p.refusal(applied)) is not None:
            raise Refusal(Code.OUT_OF_RANGE, why)
        return applied

    async def write(self, device: str, point: str, value: float | None = None, *, by: Writer) -> float | bool:
        """Write ``value`` to ``point`` of ``device`` for ``by``; returns what the device now applies.

        Raises :class:`Refusal` (nothing written) or a :class:`DeviceError` (the write failed);
        audits the attempt either way."""
        point = str(point)
        record = self._new_record(device, point, value, by)
        try:
            applied = self.check(device, point, value, by)
            if applied != value:
                record["clamped_to"] = applied
            driver = self.drivers.get(device)
            if not isinstance(driver, PointControl):
                raise Refusal(Code.NOT_WRITABLE, f"device {device!r} has no writable points")
        except Refusal as r:
            self._record(record, "refused", r.code.value, r.reason)
            raise
        return await self._perform(device, record, lambda: driver.write(point, applied))

    def _new_record(self, device: str, point: str, value: float | None, by: Writer) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "write", "ts": self.clock.now_ms(), "device": device,
                                  "point": point, "by": by.source}
        if by.ref is not None:
            record["command_id"] = by.ref
        if value is not None:
            record["value"] = value
        return record

    async def _perform(self, device: str, record: dict[str, Any], act: Callable[[], Awaitable[Any]]) -> Any:
        """Rate-limit, then run ``act`` with the timeout; audits the outcome."""
        try:
            if not self.limiter.allow(device, self.clock.monotonic()):
                raise Refusal(Code.RATE_LIMITED, f"more than {WRITE_LIMIT} writes in {WRITE_WINDOW_S:g} s to {device!r}")
            try:
                result = await asyncio.wait_for(act(), self.timeout)
            except TimeoutError:
                raise DeviceTimeout(f"device did not answer within {self.timeout:g} s") from None
        except Refusal as r:
            self._record(record, "refused", r.code.value, r.reason)
            raise
        except (DeviceError, OSError, ValueError) as e:
            self._record(record, "failed", Code.DEVICE_ERROR.value, f"{type(e).__name__}: {e}")
            raise
        record["applied"] = result
        self._record(record, "accepted", None, None)
        return result

    def _record(self, record: dict[str, Any], status: str, code: str | None, reason: str | None) -> None:
        record["status"] = status
        if code is not None:
            record.update(code=code, reason=reason)
            log.info("write %s %s=%s by %s %s: %s", record["device"], record["point"], record.get("value"),
                     record["by"], status, reason)
        self.audit(record)
