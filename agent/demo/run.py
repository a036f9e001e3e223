"""``edge-agent demo``: everything on one machine with only pip installed.

Starts an embedded broker, device simulators, an upstream subscriber and the agent (in this
process), shows readings flowing, then cuts the gateway's link to the broker for a while so you can
watch the outbox fill up and drain in order when it comes back. At the end it stops the devices,
lets the outbox drain and checks that every ``seq`` the agent issued arrived upstream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..app import Agent
from ..config import load_config_text
from .broker import EmbeddedBroker
from .link import Link
from .sims import STARTERS, DemoSims
from .view import DeviceRow, Snapshot
from .watch import UpstreamWatch

GATEWAY = "demo-gw"
DRAIN_S = 30.0  # at the end: how long the outbox may take to drain
ARRIVE_S = 10.0  # then: how long the last acknowledged messages may take to reach the subscriber


def user_cache_dir() -> Path:
    """Where the demo keeps compiled kernels between runs (XDG cache directory)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-agent"


def demo_config(state_dir: Path, broker_port: int, extra_devices: str = "") -> str:
    samples = files("drivers.replay") / "samples"
    return f'''
[gateway]
id = "{GATEWAY}"
state_dir = "{state_dir}"
log_level = "WARNING"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
protocol = "3.1.1"
reconnect_min = 0.5
reconnect_max = 2.0

[store]
max_bytes = 67108864

[health]
interval = 2

[[devices]]
name = "building-load"
type = "replay"
file = "{samples / 'building_load_kw.csv'}"
metric = "power"
unit = "kW"
speed = 300
poll_interval = 1.0

[[devices]]
name = "room-temp"
type = "replay"
file = "{samples / 'room_temperature_c.csv'}"
metric = "temperature"
unit = "°C"
speed = 300
poll_interval = 1.0
{extra_devices}
'''


@dataclass
class DemoResult:
    readings: int
    by_device: dict[str, int]
    unavailable: dict[str, str]
    last_seq: int  # the highest seq acknowledged once the outbox had drained (0: it never drained)
    missing: int  # seqs 1..last_seq that never arrived upstream
    duplicates: int
    drained: bool
    outage: str  # what happened to the planned outage

    @property
    def silent(self) -> list[str]:
        return [d for d, n in self.by_device.items() if n == 0]

    @property
    def ok(self) -> bool:
        return self.drained and self.readings > 0 and self.missing == 0 and not self.silent

    def summary(self) -> list[str]:
        heard = len(self.by_device) - len(self.silent)
        lines = [f"demo finished: {self.readings} readings arrived upstream from {heard} of "
                 f"{len(self.by_device)} devices; {self.duplicates} duplicates dropped by seq."]
        if self.drained:
            lines.append(f"seq 1..{self.last_seq}: {self.missing} missing (every message the broker "
                         "acknowledged was checked upstream).")
        else:
            lines.append(f"the outbox did not drain within {DRAIN_S:.0f} s: delivery could not be checked.")
        lines.append("readings per device: " + ", ".join(f"{d} {n}" for d, n in self.by_device.items()))
        if self.silent:
            lines.append("no readings from: " + ", ".join(self.silent))
        lines += [f"{name} unavailable: {why}" for name, why in self.unavailable.items()]
        if self.outage:
            lines.append(self.outage)
        return lines


class _LogToEvents(logging.Handler):
    """Agent warnings go to the events panel (or their own line without a TTY), never over the view."""

    def __init__(self, sink: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never break the demo
            pass


class Demo:
    def __init__(self, *, duration: float, outage_at: float | None, outage_len: float,
                 show: Callable[[Snapshot], None], say: Callable[[str], None], echo_logs: bool = False):
        self.duration = duration
        self.outage_at = outage_at
        self.outage_len = outage_len
        self.show = show
        self.say = say
        self.echo_logs = echo_logs  # without a live view, warnings get their own line
        self.events: deque[str] = deque(maxlen=20)  # upstream events and agent warnings, newest last
        self.unavailable: dict[str, str] = {}
        self.phase = "starting"
        self.started = time.monotonic()
        self.outage_note = ""
        if outage_at is not None and outage_at + outage_len > duration - 5:
            self.outage_note = (f"no link outage: --outage-at + --outage-len ({outage_at + outage_len:g} s) must end "
                                f"at least 5 s before --duration ({duration:g} s)")
            self.outage_at = None

    async def run(self) -> DemoResult:
        handler = _LogToEvents(self._log)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        try:
            if self.outage_note:
                self.say(self.outage_note)
            await self._warm()
            with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
                return await self._run(Path(tmp))
        finally:
            root.removeHandler(handler)

    def _log(self, line: str) -> None:
        self.events.append(line)
        if self.echo_logs:
            self.say(line)

    async def _warm(self) -> None:
        """Compile (first run) or load the processing kernels before any device starts."""
        from ..processing import jit
        from ..processing.warmup import warm

        cache = jit.configure_cache(user_cache_dir())
        where = f"cached in {cache}" if cache else "no writable cache directory: compiled every run"
        self.say(f"preparing the processing kernels ({where}; the first run compiles them, ~5-20 s) ...")
        timing = await asyncio.to_thread(warm, None)
        self.say(f"kernels ready in {timing['import_s'] + timing['compile_s']:.1f} s")

    async def _run(self, state_dir: Path) -> DemoResult:
        broker = EmbeddedBroker()
        await broker.start()
        sims = DemoSims()
        link = Link(broker.host, broker.port)
        watch: UpstreamWatch | None = None
        task: asyncio.Task | None = None
        try:
            for starter in STARTERS:
                await starter(sims)
            self.unavailable = sims.unavailable
            await link.start()
            text = demo_config(state_dir, link.port, "".join(sims.toml) + sims.site_toml)
            cfg = load_config_text(text, source="demo")
            watch = UpstreamWatch(broker.host, broker.port, cfg.mqtt.topic_prefix, GATEWAY, events=self.events)
            await asyncio.to_thread(watch.start)  # subscribed before the agent publishes anything
            agent = Agent(cfg)
            task = asyncio.create_task(agent.run())
            self.started = time.monotonic()
            await self._live(agent, watch, link, task)
            return await self._finish(agent, watch, link, task)
        finally:
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            if watch is not None:
                watch.stop()
            await link.stop()
            await sims.stop()
            await broker.stop()

    async def _live(self, agent: Agent, watch: UpstreamWatch, link: Link, task: asyncio.Task) -> None:
        self.phase = "readings flowing"
        while (elapsed := time.monotonic() - self.started) < self.duration:
            if task.done():
                task.result()
            if self.outage_at is not None and link.up and self.outage_at <= elapsed < self.outage_at + self.outage_len:
                link.cut()
                self.phase = f"link to the broker cut for {self.outage_len:g} s: the outbox holds everything"
            elif not link.up and elapsed >= self.outage_at + self.outage_len:
                link.restore()
                self.phase = "link back: backlog delivered in order"
            self.show(self.snapshot(agent, watch, link))
            await asyncio.sleep(0.25)

    async def _finish(self, agent: Agent, watch: UpstreamWatch, link: Link, task: asyncio.Task) -> DemoResult:
        """Stop the devices, wait for the outbox to drain, then check every acknowledged seq upstream."""
        self.phase = "devices stopped: draining the outbox"
        link.restore()
        for p in agent.pollers:
            p.stop()
        last_seq, drained = 0, False
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            if task.done():
                task.result()
            st = agent.outbox.stats()
            if st.depth == 0:  # every row up to last_seq was acknowledged by the broker
                last_seq, drained = st.last_seq, True
                break
            self.show(self.snapshot(agent, watch, link))
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + ARRIVE_S
        while watch.missing_upto(last_seq) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.phase = "finished"
        snap = self.snapshot(agent, watch, link)
        self.show(snap)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with watch.lock:
            by_device = {d.name: watch.readings_by_device.get(d.name, 0) for d in snap.devices
                         if d.state != "unavailable"}
            readings, duplicates = watch.readings, watch.duplicates
        return DemoResult(readings=readings, by_device=by_device, unavailable=dict(self.unavailable),
                          last_seq=last_seq, missing=watch.missing_upto(last_seq), duplicates=duplicates,
                          drained=drained, outage=self.outage_note)

    def snapshot(self, agent: Agent, watch: UpstreamWatch, link: Link) -> Snapshot:
        up = agent.uplink.stats() if agent.uplink else None
        rows = []
        with watch.lock:
            latest = {d: dict(v) for d, v in watch.latest.items()}
            readings, duplicates = watch.readings, watch.duplicates
        for p in agent.pollers:
            h = p.health
            if h.stale:
                state = "stale"
            elif h.up:
                state = "up"
            elif h.polls_ok == 0 and h.polls_failed == 0:
                state = "starting"
            else:
                state = "down"
            values = [f"{m} {'—' if v is None else f'{v:.4g}'} {unit}".rstrip() + (f" (q={q})" if q else "")
                      for m, (v, unit, q) in latest.get(p.name, {}).items()]
            rows.append(DeviceRow(p.name, state, h.polls_ok, values))
        rows += [DeviceRow(name, "unavailable", 0, note=why) for name, why in self.unavailable.items()]
        max_seq = watch.max_seq()
        return Snapshot(
            elapsed=time.monotonic() - self.started, phase=self.phase, link_up=link.up,
            uplink_connected=bool(up and up.connected), outbox_depth=agent.outbox.stats().depth,
            readings_per_s=up.readings_per_s if up else 0.0, upstream_readings=readings, max_seq=max_seq,
            missing_seqs=watch.missing_upto(max_seq), duplicates=duplicates, devices=rows,
            events=list(self.events))
