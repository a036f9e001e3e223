"""``bacnet``: a BACnet/IP device (an AHU controller, a chiller plant ...) read through bacpypes3.

``open()`` binds the gateway's BACnet/IP port (registering as a foreign device with a BBMD when
configured), finds the device with a directed Who-Is, checks that each configured object exists with
the configured unit, and subscribes to change of value (COV). Each poll reads the objects without a
live subscription with ReadPropertyMultiple (present-value and status-flags, ``per_request`` objects
a request) and returns the COV notifications received since the last poll with their own time; an
object whose subscription the device refuses, or whose renewal fails, is polled from then on.
Status flags become quality bits: fault -> device_flagged, overridden, out_of_service.

bacpypes3 is imported only when a ``bacnet`` device is opened (docs/drivers/bacnet.md: its memory).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.contract import (
    DeviceError,
    DeviceTimeout,
    DriverContext,
    MetricKind,
    MetricSpec,
    ProtocolError,
    Sample,
)

from .fdd import ROLES, RULE_NAMES, Diagnoser, FaultEvent
from .link import SHARED
from .objects import flags_quality, present_value, unit_of

if TYPE_CHECKING:
    from .config import BacnetConfig

log = logging.getLogger("edge_agent.drivers.bacnet")


def _with_port(address: str) -> str:
    return address if ":" in address.rsplit("/", 1)[-1] else f"{address}:47808"


class BacnetDriver:
    def __init__(self, config: BacnetConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.app: Any = None
        self.peer: Any = None
        self.cov: dict[str, Any] = {}  # metric -> live subscription context
        self.cov_tasks: list[asyncio.Task] = []
        self.pending: list[Sample] = []  # COV notifications since the last poll
        self.flags: dict[str, int] = {}  # metric -> quality from the last status flags seen
        self.heard: set[str] = set()  # subscribed metrics that have had a notification (until then: polled)
        self.fdd = Diagnoser(config.fdd) if config.ahu else None
        self.last: dict[str, float] = {}
        self.events: list[FaultEvent] = []  # fault events, newest last (kept for the last 100)
        self._untaken: list[FaultEvent] = []  # not yet handed to the agent (take_events)

    def metrics(self) -> list[MetricSpec]:
        out = []
        for name, obj in self.config.objects.items():
            kind = MetricKind.STATE if obj.oid[0].startswith(("binary", "multi-state")) else MetricKind.GAUGE
            out.append(MetricSpec(name, obj.unit, kind=kind, description=obj.object))
        if self.fdd is not None:
            out += [MetricSpec(f"fault_{r}", "h", description=f"hours the AHU fault {r} has lasted (0: clear)",
                               anomaly=False) for r in RULE_NAMES]
        return out

    async def open(self) -> None:
        from bacpypes3.pdu import Address

        c = self.config
        try:
            self.app = SHARED.acquire("edge-agent", c.local_instance, c.local_address, foreign=c.foreign_bbmd,
                                      ttl=c.foreign_ttl)
        except OSError as e:
            raise DeviceError(f"bacnet {c.name}: cannot bind local_address {c.local_address}: {e}") from e
        except ValueError as e:
            raise DeviceError(f"bacnet {c.name}: {e}") from None
        self.peer = Address(_with_port(c.address))
        try:
            if c.foreign_bbmd:
                await self._registered()
            iams = await self._timed(self.app.who_is(c.device_instance, c.device_instance, self.peer), "Who-Is")
            if not iams:
                raise DeviceTimeout(f"bacnet {c.name}: no I-Am from device {c.device_instance} at {c.address}")
            await self._check_objects()
            if c.cov:
                await self._subscribe()
        except BaseException:
            await self.close()
            raise

    async def _registered(self) -> None:
        """Wait for the BBMD to accept the foreign-device registration (bacpypes3 renews it)."""
        for ll in self.app.link_layers.values():
            event = getattr(ll, "_registration_event", None)  # bacpypes3's ForeignLinkLayer
            if event is not None:
                await self._timed(event.wait(), f"foreign-device registration with {self.config.foreign_bbmd}")
                status = getattr(ll, "bbmdRegistrationStatus", 0)
                if status != 0:
                    raise ProtocolError(f"bacnet {self.config.name}: BBMD {self.config.foreign_bbmd} refused the "
                                        f"foreign-device registration (BVLL result {status})")

    async def _timed(self, aw: Any, what: str) -> Any:
        try:
            return await asyncio.wait_for(aw, self.config.request_timeout)
        except TimeoutError:
            raise DeviceTimeout(f"bacnet {self.config.name}: no answer to {what} from {self.config.address} "
                                f"within {self.config.request_timeout:g} s") from None

    async def _rpm(self, names: list[str], props: list[str]) -> list[tuple[str, str, Any]]:
        args: list[Any] = []
        for n in names:
            args += [self.config.objects[n].object, props]
        try:
            got = await self._timed(self.app.read_property_multiple(self.peer, args), "ReadPropertyMultiple")
        except DeviceError:
            raise
        except (Exception, _refusal()) as e:  # an error, reject or abort from the device
            raise Refused(f"bacnet {self.config.name}: ReadPropertyMultiple of {', '.join(names)} refused: {e}") from e
        by_oid = {self.config.objects[n].oid: n for n in names}
        out = []
        for oid, prop, _idx, value in got:
            name = by_oid.get((str(oid[0]), int(oid[1])))
            if name is not None:
                out.append((name, str(prop), value))
        return out

    async def _check_objects(self) -> None:
        """Every configured object exists; an analog object's units agree with the configured unit."""
        c = self.config
        names = list(c.objects)
        for i in range(0, len(names), c.per_request):
            chunk = names[i:i + c.per_request]
            analog = [n for n in chunk if c.objects[n].oid[0].startswith("analog")]
            try:
                units = {n: v for n, p, v in await self._rpm(analog, ["units"]) if p == "units"} if analog else {}
            except Refused:  # a device refuses the whole request for one unknown object: find it
                units = {}
                for n in analog:
                    try:
                        units.update({name: v for name, p, v in await self._rpm([n], ["units"]) if p == "units"})
                    except Refused as e:
                        raise ProtocolError(f"bacnet {c.name}: objects.{n} ({c.objects[n].object}) is not on "
                                            f"device {c.device_instance}: {e.__cause__}") from None
            for n in chunk:
                v = units.get(n)
                if n in analog and _is_error(v):
                    raise ProtocolError(f"bacnet {c.name}: objects.{n} ({c.objects[n].object}) is not on device "
                                        f"{c.device_instance}: {v}")
                mapped = unit_of(str(v)) if v is not None else None
                if mapped is not None and c.objects[n].unit and mapped != c.objects[n].unit:
                    raise ProtocolError(f"bacnet {c.name}: objects.{n} ({c.objects[n].object}) is in {v} ({mapped}), "
                                        f"config says unit = {c.objects[n].unit!r}")

    async def _subscribe(self) -> None:
        from bacpypes3.primitivedata import ObjectIdentifier

        for name in self.config.objects:
            pid = SHARED.process_id()
            scm = self.app.change_of_value(self.peer, ObjectIdentifier(self.config.objects[name].object), pid, True,
                                           self.config.cov_lifetime)
            try:
                await self._timed(scm.__aenter__(), "SubscribeCOV")
            except (Exception, _refusal()) as e:
                log.info("bacnet %s: %s refuses COV (%s); polled", self.config.name, name, e)
                self.app._cov_contexts.pop((self.peer, pid), None)
                continue
            self.cov[name] = scm
            self.cov_tasks.append(asyncio.get_running_loop().create_task(self._listen(name, scm)))

    async def _listen(self, name: str, scm: Any) -> None:
        otype = self.config.objects[name].oid[0]
        while True:
            prop, value = await scm.get_value()
            if str(prop) == "status-flags":
                self.flags[name] = flags_quality(value)
            elif str(prop) == "present-value":
                try:
                    v = present_value(otype, value)
                except (TypeError, ValueError):
                    continue
                self.heard.add(name)
                self.pending.append(Sample(name, v, self.flags.get(name, 0), self.clock.now_ms()))

    def _renewal_failed(self, name: str) -> bool:
        task = self.cov[name].refresh_subscription_task
        return task is not None and task.done() and (task.cancelled() or task.exception() is not None)

    async def read(self) -> list[Sample]:
        c = self.config
        if self.app is None:
            raise DeviceError(f"bacnet {c.name}: not open")
        for name in [n for n in self.cov if self._renewal_failed(n)]:
            log.warning("bacnet %s: COV renewal of %s failed; polling it", c.name, name)
            del self.cov[name]
        out, self.pending = self.pending, []
        polled = [n for n in c.objects if n not in self.cov or n not in self.heard]
        if not polled:  # everything arrives by COV: still ask one object, so a silent device fails the poll
            polled = [next(iter(c.objects))]
        flags: dict[str, int] = {}
        values: dict[str, Any] = {}
        for i in range(0, len(polled), c.per_request):
            for n, prop, v in await self._rpm(polled[i:i + c.per_request], ["present-value", "status-flags"]):
                (flags if prop == "status-flags" else values)[n] = v
        for n in polled:
            v = values.get(n)
            if v is None or _is_error(v):
                raise ProtocolError(f"bacnet {c.name}: no present-value for {n} ({c.objects[n].object}): {v}")
            try:
                out.append(Sample(n, present_value(c.objects[n].oid[0], v), flags_quality(flags.get(n))))
            except (TypeError, ValueError):
                raise ProtocolError(f"bacnet {c.name}: {n} present-value {v!r} is not a number") from None
        if self.fdd is not None:
            out += self._diagnose(out)
        return out

    def _diagnose(self, samples: list[Sample]) -> list[Sample]:
        assert self.fdd is not None and self.config.ahu is not None
        for s in samples:
            if s.metric in self.config.objects:
                self.last[s.metric] = math.nan if s.quality else s.value  # flagged values are not evidence
        now = self.clock.now_ms()
        col = np.array([[self.last.get(self.config.ahu.get(r, ""), math.nan)] for r in ROLES], np.float64)
        for e in self.fdd.process(np.array([now], np.int64), col):
            log.warning("bacnet %s: AHU fault %s %s (%s, mode %s, %.2f h) evidence %s", self.config.name, e.rule,
                        e.state, e.description, e.mode, e.hours, e.evidence)
            self.events = (self.events + [e])[-100:]
            self._untaken = (self._untaken + [e])[-100:]
        return [Sample(f"fault_{r}", h) for r, h in self.fdd.episode_hours(now).items()]

    def take_events(self) -> list[dict[str, Any]]:
        """Fault events since the last call, as event-topic bodies (agent.contract.ReportsEvents)."""
        out = [{"v": 1, "kind": f"fault_{e.state}", "ts": e.ts_ms, "rule": e.rule, "description": e.description,
                "mode": e.mode, "evidence": e.evidence, "hours": e.hours} for e in self._untaken]
        self._untaken = []
        return out

    async def write(self, point: str, value: float | None) -> float | None:
        """Write a point's present-value at its priority; ``NAME_release`` writes Null (relinquish)."""
        from bacpypes3.primitivedata import Null

        c = self.config
        release = point.endswith("_release") and point[:-8] in c.objects
        name = point[:-8] if release else point
        if name not in c.objects or self.app is None:
            raise DeviceError(f"{point!r} is not a point of bacnet device {c.name}")
        obj = c.objects[name]
        prio = obj.priority or c.priority
        if release:
            wire: Any = Null(())
        elif obj.oid[0].startswith("binary"):
            wire = "active" if value else "inactive"
        else:
            wire = float(value) if value is not None else None
        try:
            result = await self._timed(self.app.write_property(self.peer, obj.object, "present-value", wire,
                                                               priority=prio), "WriteProperty")
        except DeviceError:
            raise
        except (Exception, _refusal()) as e:
            raise DeviceError(f"bacnet {c.name}: write {point} refused: {e}") from e
        if result is not None:
            raise DeviceError(f"bacnet {c.name}: write {point} refused: {result}")
        return None if release else value

    async def close(self) -> None:
        for t in self.cov_tasks:
            t.cancel()
        self.cov_tasks.clear()
        # all subscriptions at once: a gone device costs close() one second, not one per object
        await asyncio.gather(*(self._unsubscribe(name, scm) for name, scm in self.cov.items()))
        self.cov.clear()
        if self.app is not None:
            SHARED.release(self.config.local_address)
            self.app = None

    async def _unsubscribe(self, name: str, scm: Any) -> None:
        try:
            await asyncio.wait_for(scm.__aexit__(None, None, None), 1.0)
        except Exception:  # the device may be gone: the subscription then lapses on its own
            log.debug("bacnet %s: unsubscribe %s failed", self.config.name, name)


class Refused(ProtocolError):
    """The device answered a request with an error, a reject or an abort."""


def _refusal() -> type[BaseException]:
    """bacpypes3's error/reject/abort replies (a BaseException, not an Exception)."""
    from bacpypes3.apdu import ErrorRejectAbortNack

    return ErrorRejectAbortNack


def _is_error(v: Any) -> bool:
    return v is None or type(v).__name__ in ("ErrorType", "Error", "ErrorRejectAbortNack")
