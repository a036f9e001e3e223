"""The one door to the physical world: every write to a device goes through a :class:`WriteGate`.

Commands, the site controller and any future scheduler ask the gate. It checks that the point is
declared writable for the device (``writable = [...]``), that the value is within the declared bounds
(``current_limit_bounds`` for chargers; other devices declare their points and bounds through their
config, :class:`agent.contract.DeclaresPoints`), that the device is not written more than ``WRITE_LIMIT`` times per
``WRITE_WINDOW_S``, then writes through the typed charger capability (or the driver's ``write(point, value)``) with a timeout. Every write it is
asked for is audited, whatever the outcome: who asked (a command id, the site controller), what, and
what happened.

Out-of-bounds current limits are refused for commands (the sender is told) and clamped for automatic
writers (``Writer.clamp``): above the maximum to the maximum, below the minimum to 0 (pause). A current
limit of 0 pauses and is always within bounds for automatic writers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.contract import Clock
from agent.contract.charger import ChargerControl, ChargerKeys, ChargerPoint
from agent.contract.points import DeclaresPoints, PointBounds, PointControl
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
    """Who asks for a write. ``clamp``: out-of-bounds current limits are clamped instead of refused."""

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

    def writable(self, device: str) -> tuple[ChargerPoint, ...]:
        """The points declared writable for ``device`` (none for a device that is not a charger)."""
        cfg = self.devices.get(device)
        return cfg.writable if isinstance(cfg, ChargerKeys) else ()

    def bounds(self, device: str) -> tuple[float, float]:
        """[min, max] amps a current limit written to ``device`` may have."""
        cfg = self.devices.get(device)
        return cfg.current_limit_bounds if isinstance(cfg, ChargerKeys) else DEFAULT_BOUNDS

    def check(self, device: str, point: ChargerPoint, value: float | None, writer: Writer) -> float | None:
        """The value a write of ``value`` to ``point`` would apply; raises :class:`Refusal` if it may not happen."""
        if point not in self.writable(device):
            raise Refusal(Code.NOT_WRITABLE, f"{point.value!r} is not declared writable for {device!r}")
        if point is not ChargerPoint.CURRENT_LIMIT:
            return None
        if value is None:
            raise Refusal(Code.MALFORMED, "a current limit needs a value in A")
        lo, hi = self.bounds(device)
        if lo <= value <= hi:
            return value
        if not writer.clamp or value < 0:
            raise Refusal(Code.OUT_OF_RANGE, f"current limit {value:g} A is outside [{lo:g}, {hi:g}] A")
        return hi if value > hi else 0.0

    def declared(self, device: str) -> Mapping[str, PointBounds]:
        """The bounded points the config of ``device`` declares writable (none for a charger: see ``writable``)."""
        cfg = self.devices.get(device)
        return cfg.writable_points() if isinstance(cfg, DeclaresPoints) else {}

    def check_point(self, device: str, point: str, value: float) -> float:
        """Like :meth:`check` for a declared point: raises :class:`Refusal` unless ``value`` may be written."""
        bounds = self.declared(device).get(point)
        if bounds is None:
            raise Refusal(Code.NOT_WRITABLE, f"{point!r} is not declared writable for {device!r}")
        if (why := bounds.refusal(point, value)) is not None:
            raise Refusal(Code.OUT_OF_RANGE, why)
        return value

    async def write(self, device: str, point: ChargerPoint, value: float | None = None, *,
                    by: Writer) -> float | bool:
        """Write ``value`` to ``point`` of ``device`` for ``by``; returns what the device now applies.

        Raises :class:`Refusal` (nothing written) or a :class:`DeviceError` (the write failed);
        audits the attempt either way."""
        record = self._new_record(device, point.value, value, by)
        try:
            applied = self.check(device, point, value, by)
            if applied != value:
                record["clamped_to"] = applied
            driver = self.drivers.get(device)
            if not isinstance(driver, ChargerControl):
                raise Refusal(Code.NOT_WRITABLE, f"device {device!r} has no writable points")
        except Refusal as r:
            self._record(record, "refused", r.code.value, r.reason)
            raise
        return await self._perform(device, record, lambda: self._apply(driver, point, applied))

    async def write_point(self, device: str, point: str, value: float, *, by: Writer) -> float:
        """Write ``value`` to a point the config of ``device`` declares (:meth:`declared`); like :meth:`write`."""
        record = self._new_record(device, point, value, by)
        try:
            self.check_point(device, point, value)
            driver = self.drivers.get(device)
            if not isinstance(driver, PointControl):
                raise Refusal(Code.NOT_WRITABLE, f"device {device!r} has no writable points")
        except Refusal as r:
            self._record(record, "refused", r.code.value, r.reason)
            raise
        return await self._perform(device, record, lambda: driver.write(point, value))

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

    @staticmethod
    async def _apply(driver: ChargerControl, point: ChargerPoint, value: float | None) -> float | bool:
        if point is ChargerPoint.CURRENT_LIMIT:
            assert value is not None
            return await driver.set_current_limit(value)
        if point is ChargerPoint.START:
            return await driver.start()
        if point is ChargerPoint.STOP:
            return await driver.stop()
        raise Refusal(Code.NOT_WRITABLE, f"{point.value!r} is not a device write")

    def _record(self, record: dict[str, Any], status: str, code: str | None, reason: str | None) -> None:
        record["status"] = status
        if code is not None:
            record.update(code=code, reason=reason)
            log.info("write %s %s=%s by %s %s: %s", record["device"], record["point"], record.get("value"),
                     record["by"], status, reason)
        self.audit(record)
