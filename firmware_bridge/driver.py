"""``mcu_node``: a microcontroller sensor node speaking the firmware bridge protocol on a ``serial`` line."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from agent.contract import (
    DeviceError,
    DeviceTimeout,
    DriverContext,
    MetricKind,
    MetricSpec,
    Point,
    PointKind,
    Quality,
    Sample,
)
from agent.contract.lazy import lazy_exports

from . import codec as c
from .framing import scan_all
from .link import NodeLink
from .state import NodeState, discover

log = logging.getLogger("edge_agent.firmware_bridge")
KINDS = {c.Kind.GAUGE: MetricKind.GAUGE, c.Kind.COUNTER: MetricKind.COUNTER, c.Kind.STATE: MetricKind.STATE}
OUTPUT = re.compile(r"^output(\d{1,3})$")
MAX_INTERVAL_MS = 86_400_000

if TYPE_CHECKING:
    from .config import McuNodeConfig

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"McuNodeConfig": "firmware_bridge.config"})


class McuNodeBase:
    """Mixin of :class:`~.config.McuNodeConfig` (and its plain twin): the points it offers."""

    def points(self) -> list[Point]:
        """The node's points for the write gate (agent.contract.DeclaresPoints): its sampling interval and
        the outputs named in ``writable``."""
        lo, hi = self.interval_bounds
        out = [Point("interval_ms", unit="ms", low=lo, high=hi, integer=True, writable="interval_ms" in self.writable,
                     meaning="the node's sampling interval")]
        out += [Point(p, PointKind.SWITCH, writable=True, meaning="1 switches the output on, 0 off")
                for p in self.writable if p != "interval_ms"]
        return out

    def aliases(self) -> dict[str, str]:
        return {"set_interval": "interval_ms", "set_output": "output{output}"}


class McuNodeDriver:
    def __init__(self, config: McuNodeConfig, ctx: DriverContext):
        self.config = config
        self.bus = ctx.buses.get(config.line)
        self.clock = ctx.clock
        # Acknowledge only what the pipeline has committed: its commit hook tells us, and the floor is
        # persisted right then, so a gateway killed after the commit does not take the readings twice.
        # Without a pipeline (`edge-agent read`) a reading counts as committed at the next read.
        self._mark = float("-inf")
        self._hooked = ctx.on_commit is not None
        if ctx.on_commit is not None:
            ctx.on_commit(self._on_commit)
        self.state = NodeState(ctx.state_dir / "firmware_bridge" / f"{config.name}.json")
        saved = self.state.load()
        desc, boot_id = saved.description, saved.boot_id
        if desc is None and config.describe_timeout:
            line = self.bus.config
            desc = discover(line.port, baudrate=line.baudrate, addr=config.address, timeout=config.describe_timeout)
            boot_id = desc.hello.boot_id if desc else None  # the description belongs to this boot
        self.link = NodeLink(addr=config.address, node_id=config.node_id, sync_interval=config.sync_interval,
                             boot_id=boot_id, floor=saved.floor if boot_id == saved.boot_id else 0,
                             committed=saved.committed if boot_id == saved.boot_id else (), description=desc)
        # a node's counters start again at each boot (spec: counters), so a step back is a restart
        self._metrics = [MetricSpec(m.name, m.unit, KINDS.get(m.kind, MetricKind.GAUGE), restarts=m.kind == c.Kind.COUNTER)
                         for m in desc.metrics] if desc else []
        self._declared = {m.name for m in self._metrics}
        self.undeclared = 0
        self.new_metrics: dict[str, dict[str, Any]] = {}  # announced after start: last value, in health
        self._warned: set[str] = set()
        self._started = time.monotonic()
        if desc is not None:
            self._persist()

    def metrics(self) -> list[MetricSpec]:
        return list(self._metrics)

    async def open(self) -> None:
        """Nothing to do: the node talks as soon as the line is open."""

    def _persist(self) -> None:
        cur = self.link.current
        if cur is None:
            self.state.save(self.link.description, None, 0)
        else:
            self.state.save(self.link.description, cur.boot_id, cur.floor, tuple(sorted(cur.committed)))

    async def _exchange(self, out: bytes, until) -> None:
        """Send ``out``, then take frames for up to ``wait`` s, stopping early once ``until()`` holds."""
        loop_deadline = time.monotonic() + self.config.wait
        write: bytes | None = out or None
        while True:
            remaining = loop_deadline - time.monotonic()
            if remaining <= 0 and write is None:
                return
            try:
                data = await self.bus.transact(write, read_until=scan_all, timeout=max(remaining, 0.001), flush=False)
            except DeviceTimeout:
                return
            self.link.receive(data or b"", time.monotonic())
            # readings wait for a sync after them, and a clock that looks wrong is checked at once
            write = self.link.urgent(time.monotonic(), self.clock.now_ms()) or None
            if until():
                return

    async def read(self) -> list[Sample]:
        link, cfg = self.link, self.config
        link.committed_through(self._mark)
        out = link.outgoing(time.monotonic(), self.clock.now_ms(), always_ack=cfg.address is not None)
        self._persist()  # the floor we are about to acknowledge is on disk first
        try:
            await self._exchange(out, until=lambda: not link.sync_pending() and bool(link.ready))
        finally:
            link.drop_sync(time.monotonic())
        now = time.monotonic()
        limit = self.silent_limit()
        quiet = now - (link.last_heard or self._started)
        if quiet > limit:
            raise DeviceTimeout(f"node on line {cfg.line!r} silent for more than {limit:g} s")
        if quiet > limit / 2:
            link.probe()  # a slow node is asked (TIME_REQ) before it would count as down
        desc = link.description
        if not self._metrics:
            if desc is not None:
                self._persist()
                raise DeviceError(f"node {desc.hello.node_id:08x} described {len(desc.metrics)} metrics after the agent "
                                  "started; restart the agent to publish them")
            raise DeviceError("the node has not described its metrics yet (DESCRIBE sent)")
        samples: list[Sample] = []
        readings = link.take_readings(now)
        for r in readings:
            q = int(Quality.ESTIMATED) if r.error_ms > cfg.max_time_error_ms or not r.certain else 0
            for idx, raw in r.values.items():
                m = r.metrics[idx] if idx < len(r.metrics) else None  # scaled as the boot that took it said
                if m is None:
                    self.undeclared += 1
                    self._warn_once(f"#{idx}", "node %s sent a value for metric index %d, which its description "
                                    "does not declare; such values are counted as undeclared_values", link.node_label, idx)
                    continue
                value = raw / 10 ** -m.scale if m.scale < 0 else float(raw * 10 ** m.scale)
                if m.name not in self._declared:
                    self.undeclared += 1
                    self.new_metrics[m.name] = {"unit": m.unit, "value": value, "ts_ms": r.ts_ms, "q": q}
                    self._warn_once(m.name, "node %s has a new metric %r (%s) since the agent started: its latest "
                                    "value is published in health (new_metrics) and the series after an agent "
                                    "restart", link.node_label, m.name, m.unit)
                    continue
                samples.append(Sample(m.name, value, q, r.ts_ms))
        if not self._hooked:
            self._mark = time.monotonic()
        return samples

    def silent_limit(self) -> float:
        """Seconds of silence before the node counts as down: the configured floor, or longer for a
        node that announces (or was told) a long sampling interval."""
        interval = (self.link.interval_ms or 0) / 1000.0
        return max(self.config.silent_after, 2 * interval + self.config.wait)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def _on_commit(self, mark: float) -> None:
        self._mark = mark
        if self.link.committed_through(mark):
            self._persist()

    async def write(self, point: str, value: Any) -> Any:
        cfg = self.config
        if point == "interval_ms":
            lo, hi = cfg.interval_bounds
            if not lo <= float(value) <= hi:
                raise DeviceError(f"interval {value} ms is outside [{lo}, {hi}] ms")
            op, target = c.Op.SET_INTERVAL, 0
        elif (m := OUTPUT.match(point)) is not None:
            if float(value) not in (0.0, 1.0):
                raise DeviceError(f"{point} takes 0 or 1, not {value}")
            op, target = c.Op.SET_OUTPUT, int(m.group(1))
        else:
            raise DeviceError(f"{point!r} is not a point of an mcu_node")
        cid, frame = self.link.command_frame(op, target, int(value))
        await self._exchange(frame, until=lambda: cid in self.link.results)
        res = self.link.results.pop(cid, None)
        if res is None:
            raise DeviceTimeout(f"node did not answer the {point} command within {cfg.wait:g} s")
        if res.status != c.Status.OK:
            raise DeviceError(f"node refused {point} = {value}: {c.Status(res.status).name.lower()}")
        if op == c.Op.SET_INTERVAL:
            self.link.interval_ms = res.value
        return res.value

    def diagnostics(self) -> dict[str, Any]:
        link, cur = self.link, self.link.current
        d: dict[str, Any] = dict(link.counters, undeclared_values=self.undeclared)
        if self.new_metrics:
            d["new_metrics"] = {k: dict(v) for k, v in self.new_metrics.items()}
        if link.description is not None:
            d.update(node_id=f"{link.description.hello.node_id:08x}", firmware=link.description.hello.fw_version)
        if cur is not None:
            err = cur.times.error_ms(time.monotonic())
            d.update(boot_id=f"{cur.boot_id:08x}", acked_seq=cur.floor, node_dropped=cur.dropped,
                     time_error_ms=None if err is None else round(err, 1), clock_rate_ppm=round(cur.times.rate_ppm))
        return d

    async def close(self) -> None:
        """Nothing to release: the line belongs to the bus pool."""
