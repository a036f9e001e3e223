"""The running agent: builds drivers, pollers, pipeline, outbox and uplink, and runs them.

Data flows one way: pollers -> pipeline (processing) -> outbox (SQLite) -> uplink (MQTT). Commands
come back from MQTT through the command router to the drivers, answered through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from .bus import LINE_KINDS, BusPool
from .commands import build as build_commands
from .config.schema import AgentConfig
from .driver import Clock, Driver, DriverCatalog, DriverContext
from .errors import ConfigError
from .health import build_health, write_status
from .pipeline import Pipeline
from .processing import Processor
from .processing.warmup import warm
from .scheduler import Poller
from .sdnotify import Notifier
from .series import LatestValues, SeriesTable
from .store.outbox import Outbox, Pending, Priority
from .uplink.topics import Topics

log = logging.getLogger("edge_agent")
SITE_STEP_S = 1.0  # site controller period: stale grid data is acted on within a second


def prepare_state_dir(config: AgentConfig) -> Path:
    state = config.gateway.state_dir
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError([f"gateway.state_dir: cannot create {state}: {e.strerror}"]) from None
    if not os.access(state, os.W_OK):
        raise ConfigError([f"gateway.state_dir: {state} is not writable by this user"])
    # numba reads this at import; the processing package falls back to compiling if it is unusable
    os.environ.setdefault("NUMBA_CACHE_DIR", str(state / "numba-cache"))
    return state


class Agent:
    def __init__(self, config: AgentConfig, *, catalog: DriverCatalog | None = None, clock: Clock | None = None,
                 notifier: Notifier | None = None):
        self.config = config
        self.catalog = catalog or DriverCatalog.discover()
        self.clock = clock or Clock()
        self.notifier = notifier or Notifier()
        self.topics = Topics(config.mqtt.topic_prefix, config.gateway.id)
        self.state_dir = prepare_state_dir(config)
        self.buses = BusPool(config.lines, LINE_KINDS)
        self.series = SeriesTable()
        self.drivers: dict[str, Driver] = {}
        self._commit_listeners: list = []  # drivers that acknowledge to their device only what is committed
        ctx = DriverContext(gateway=config.gateway.id, state_dir=self.state_dir, buses=self.buses, clock=self.clock,
                            on_commit=self._commit_listeners.append)
        for dev in config.devices:
            if not dev.enabled:
                continue
            spec = self.catalog.get(dev.type)
            if spec is None:
                raise ConfigError([f"devices: no driver installed for type {dev.type!r}"])
            driver = spec.factory(dev, ctx)
            self.drivers[dev.name] = driver
            self.series.add_device(dev.name, driver.metrics())
        self.latest = LatestValues(len(self.series))
        self.outbox = Outbox(config.outbox_path, max_bytes=config.store.max_bytes, gateway=config.gateway.id)
        self.processor = self._make_processor()
        self.uplink = None  # built in run(): the embedded broker decides the address
        self.pipeline = Pipeline(config=config, series=self.series, outbox=self.outbox, topics=self.topics,
                                 latest=self.latest, processor=self.processor, on_committed=self._committed,
                                 clock=self.clock)
        self.pollers = [Poller(config.device(name), drv, self.pipeline.submit, clock=self.clock)
                        for name, drv in self.drivers.items()]
        self.commands, self.site = self._make_control()
        self.broker = None
        self.started_mono = time.monotonic()

    # -- optional parts ---------------------------------------------------------------------------
    def _make_processor(self) -> Processor:
        return Processor(self.config, self.series, state_dir=self.state_dir, clock=self.clock)

    def _make_control(self):
        return build_commands(self.config, self.drivers, self.latest, self.series, self.clock)

    # -- wiring ----------------------------------------------------------------------------------
    def _committed(self) -> None:
        mark = time.monotonic()
        if self.uplink is not None:
            self.uplink.wake()
        for listener in self._commit_listeners:
            try:
                listener(mark)
            except Exception:  # noqa: BLE001 - one driver's bookkeeping must not break the commit loop
                log.exception("commit listener failed")

    async def _on_command(self, device: str, payload: bytes) -> None:
        outcome = await self.commands.handle(device, payload)
        self.pipeline.submit_message(Pending(Priority.EVENT, self.topics.command_result(device), outcome.result))
        if getattr(outcome, "audit", None):
            self.pipeline.submit_message(Pending(Priority.AUDIT, self.topics.audit, outcome.audit))

    def health(self) -> dict:
        return build_health(
            gateway=self.config.gateway.id, started_mono=self.started_mono, now_ms=self.clock.now_ms(),
            outbox_stats=self.outbox.stats(), uplink_stats=self.uplink.stats() if self.uplink else {},
            pipeline_stats=self.pipeline.stats, pollers=self.pollers,
            processing=self.processor.summary(),
            buses=self.buses.stats(),
        )

    async def _health_loop(self) -> None:
        while True:
            try:
                body = self.health()
                write_status(self.state_dir, body)
                if self.uplink is not None:
                    self.uplink.publish_transient(self.topics.health, body)
                up = sum(1 for p in self.pollers if p.health.up)
                self.notifier.status(f"{up}/{len(self.pollers)} devices up, buffer {body['buffer']['depth']} messages")
            except Exception:  # noqa: BLE001 - a health report failing must not stop the agent
                log.exception("health report failed")
            await asyncio.sleep(self.config.health.interval)

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval
        if not interval or not self.config.health.watchdog:
            return
        limit = max(5.0, 3 * self.config.store.commit_interval)
        while True:
            # ping only while the pipeline loop is alive; a stuck loop lets systemd restart us
            if time.monotonic() - self.pipeline.heartbeat < limit:
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _site_loop(self) -> None:
        if self.site is None:
            return
        while True:
            await asyncio.sleep(SITE_STEP_S)
            try:
                for body in await self.site.step(self.clock.now_ms()):
                    self.pipeline.submit_message(Pending(Priority.EVENT, self.topics.event, body))
            except Exception:  # noqa: BLE001 - control errors are logged; polling goes on
                log.exception("site controller step failed")

    async def _start_uplink(self) -> None:
        from .uplink.mqtt import Uplink

        mqtt = self.config.mqtt
        if mqtt.host is None:
            from .broker import EmbeddedBroker

            self.broker = EmbeddedBroker()
            await self.broker.start()
            log.warning("no [mqtt] host configured: running an embedded broker on %s:%d (demo only)",
                        self.broker.host, self.broker.port)
            mqtt = mqtt.model_copy(update={"host": self.broker.host, "port": self.broker.port})
        self.uplink = Uplink(mqtt, self.config.gateway.id, self.outbox, on_command=self._on_command, clock=self.clock)

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        # compile (or load from the cache) every kernel before the first batch, off the event loop
        timing = await asyncio.to_thread(warm, self.state_dir)
        log.info("processing kernels ready in %.2f s (jit %s)", timing["import_s"] + timing["compile_s"], timing["jit"])
        await self._start_uplink()
        tasks = [asyncio.create_task(p.run(), name=f"poll:{p.name}") for p in self.pollers]
        tasks += [
            asyncio.create_task(self.pipeline.run(), name="pipeline"),
            asyncio.create_task(self.uplink.run(), name="uplink"),
            asyncio.create_task(self._health_loop(), name="health"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            asyncio.create_task(self._site_loop(), name="site"),
        ]
        self.notifier.ready(f"polling {len(self.pollers)} devices")
        log.info("gateway %s running: %d devices, outbox %s", self.config.gateway.id, len(self.pollers),
                 self.config.outbox_path)
        try:
            done, _ = await asyncio.wait(
                [t for t in tasks if not t.get_name().startswith("poll:")], return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()
        finally:
            self.notifier.stopping()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.shutdown()

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.pipeline.cycle()  # commit whatever the pollers delivered last
        if self.uplink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.uplink.stop(), 5)
        await self.buses.close()
        if self.broker is not None:
            await self.broker.stop()
        self.outbox.close()


async def run_agent(config: AgentConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly."""
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    main = asyncio.create_task(agent.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main
