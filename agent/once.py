"""``edge-agent run --once``: poll every device once, process, and return what would be published.

The same drivers, pollers, pipeline, processing and payload encoders as the service; the outbox is
replaced by a :class:`DryOutbox` that only numbers and encodes messages. Nothing in the state
directory is created or changed: drivers and the kernel cache get a temporary copy of the state
directory's sub-directories (driver state such as pulse counts, the compiled-kernel cache); its own
files (outbox, lock, status) are never opened.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .bus import LINE_KINDS, BusPool
from .config.schema import AgentConfig
from .driver import Clock, DriverCatalog, DriverContext
from .errors import ConfigError
from .pipeline import Pipeline
from .scheduler import Poller
from .series import LatestValues, SeriesTable
from .store.outbox import Pending, Priority
from .store.seqmark import SeqMarkError, mark_path, new_stream, read_mark
from .uplink.topics import Topics

CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes  # exactly the bytes the outbox would store and the uplink publish
    priority: Priority


class DryOutbox:
    """Stands in for the SQLite outbox: sets ``gateway``, ``stream`` and ``seq`` on each body as the
    outbox does (seq counts from 1 here; the service continues its outbox's sequence; ``stream`` is
    the state directory's when it has one, else a throwaway one) and keeps the encoded messages in memory."""

    acked_pending_delete = 0

    def __init__(self, gateway: str, stream: str | None = None):
        self.gateway = gateway
        self.stream = stream or new_stream()
        self.messages: list[Message] = []
        self._seq = 0

    def append(self, items: Sequence[Pending]) -> list[int]:
        seqs = []
        for item in items:
            priority, topic, body = item.priority, item.topic, item.body
            self._seq += 1
            body["gateway"] = self.gateway
            body["stream"] = self.stream
            body["seq"] = self._seq
            self.messages.append(Message(topic, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                                         Priority(priority)))
            seqs.append(self._seq)
        return seqs

    def count_drops(self, dropped: dict) -> None:  # the pipeline holds nothing here: never called
        return None


def _state_stream(outbox_path: Path) -> str | None:
    """The stream of the state directory's outbox, read without changing anything."""
    try:
        mark = read_mark(mark_path(outbox_path))
    except SeqMarkError:
        return None
    return mark.stream if mark else None


def scratch_state(state_dir: Path, into: Path) -> Path:
    """A throwaway copy of ``state_dir``'s sub-directories (read only) under ``into``."""
    if state_dir.is_dir():
        for sub in state_dir.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                shutil.copytree(sub, into / sub.name, dirs_exist_ok=True)
    return into


class OnceRig:
    """Every enabled device's driver and poller, built as the agent builds them, polled once each."""

    def __init__(self, config: AgentConfig, state_dir: Path, *, catalog: DriverCatalog | None = None,
                 clock: Clock | None = None):
        catalog = catalog or DriverCatalog.discover()
        self.config = config
        self.clock = clock or Clock()
        self.state_dir = state_dir
        self.buses = BusPool(config.lines, LINE_KINDS)
        self.series = SeriesTable()
        ctx = DriverContext(gateway=config.gateway.id, state_dir=state_dir, buses=self.buses, clock=self.clock)
        self.pollers: list[Poller] = []
        drivers = []
        for dev in config.devices:
            if not dev.enabled:
                continue
            spec = catalog.get(dev.type)
            if spec is None:
                raise ConfigError([f"devices: no driver installed for type {dev.type!r}"])
            driver = spec.factory(dev, ctx)
            self.series.add_device(dev.name, driver.metrics())
            drivers.append((dev, driver))
        self._drivers = drivers

    def make_pollers(self, sink) -> list[Poller]:
        self.pollers = [Poller(dev, drv, sink, clock=self.clock) for dev, drv in self._drivers]
        return self.pollers

    async def poll(self) -> dict[str, str]:
        """Poll every device once, concurrently as the service does; returns {device: error} of failures."""
        await asyncio.gather(*(p.poll_once() for p in self.pollers))
        return {p.name: p.health.last_error for p in self.pollers if not p.health.up}

    async def close(self) -> None:
        for p in self.pollers:
            try:
                await asyncio.wait_for(p.driver.close(), CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - closing one device must not stop the others closing
                pass
        try:
            await asyncio.wait_for(self.buses.close(), CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001
            pass


@dataclass
class OnceResult:
    messages: list[Message] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # device -> "ErrorType: message"
    polled: int = 0


async def run_once(config: AgentConfig, *, catalog: DriverCatalog | None = None) -> OnceResult:
    """Poll, process and encode once; the state directory is only read."""
    from .processing import Processor

    with tempfile.TemporaryDirectory(prefix="edge-agent-once-") as tmp:
        state = scratch_state(config.gateway.state_dir, Path(tmp))
        rig = OnceRig(config, state, catalog=catalog)
        outbox = DryOutbox(config.gateway.id, _state_stream(config.outbox_path))
        processor = Processor(config, rig.series, state_dir=state, clock=rig.clock)
        pipeline = Pipeline(config=config, series=rig.series, outbox=outbox,  # type: ignore[arg-type]
                            topics=Topics(config.mqtt.topic_prefix, config.gateway.id),
                            latest=LatestValues(len(rig.series)), processor=processor, clock=rig.clock)
        rig.make_pollers(pipeline.submit)
        try:
            failures = await rig.poll()
        finally:
            await rig.close()
        pipeline.cycle(final=True)
        return OnceResult(outbox.messages, failures, len(rig.pollers))
