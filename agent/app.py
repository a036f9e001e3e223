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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .bus import BusPool, LineKind
from .commands import CommandRouter, IdStore, WriteGate
from .config.core import broker_problem
from .driver import Clock, Driver, DriverCatalog, DriverContext
from .errors import ConfigError
from .health import build_health, write_status
from .health_parts import HealthReport
from .heap import heap_trimmer
from .pipeline import Pipeline
from .processing import Processor
from .remote import ConfigFiles, RemoteOps
from .scheduler import Poller, PollsInFlight, cadences
from .sdnotify import Notifier
from .series import LatestValues, SeriesTable
from .store.outbox import Pending, Priority
from .store.quarantine import Quarantined
from .store.resilient import ResilientOutbox
from .timesync import cached_time_sync_status, refresh_time_sync_status
from .uplink.topics import Topics

if TYPE_CHECKING:  # the running agent reads the config's plain twin (agent.contract.plain) or the models
    from .config.schema import AgentConfig

log = logging.getLogger("edge_agent")
SITE_STEP_S = 1.0  # site controller period: stale grid data is acted on within a second
TASK_STOP_S = 3.0  # at shutdown, how long each round of cancellation waits for tasks to end
START_NOTIFY_S = 5.0  # while kernels compile at start, systemd hears from us at least this often


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
                 notifier: Notifier | None = None, warm_kernels: Callable[[], dict] | None = None,
                 config_files: ConfigFiles | None = None, trial: dict | None = None,
                 doctor_checks: Callable[[], list[dict]] | None = None, line_kinds: Mapping[str, LineKind] | None = None):
        if (problem := broker_problem(config)) is not None:  # `run` has said so already; this is for other callers
            raise ConfigError([f"mqtt.host: {problem}"])
        self.config = config
        self.catalog = catalog or DriverCatalog.discover()
        self.clock = clock or Clock()
        self.notifier = notifier or Notifier()
        self.warm_kernels = warm_kernels  # compiles or loads every kernel (default: the processor's); returns timings
        self.topics = Topics(config.mqtt.topic_prefix, config.gateway.id)
        self.state_dir = prepare_state_dir(config)
        self.buses = BusPool(config.lines, line_kinds)  # (default: the installed kinds, by entry point)
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
        # damage found later (any read or write) is set aside the same way, while the agent runs
        self.outbox = ResilientOutbox(config.outbox_path, max_bytes=config.store.max_bytes, gateway=config.gateway.id,
                                      on_quarantined=self._quarantined, now_ms=self.clock.now_ms)
        self.processor = self._make_processor()
        self.uplink = None  # built in run()
        self.pipeline = Pipeline(config=config, series=self.series, outbox=self.outbox, topics=self.topics,
                                 latest=self.latest, processor=self.processor, on_committed=self._committed,
                                 clock=self.clock)
        if self.outbox.startup_quarantine is not None:
            self._quarantined(self.outbox.startup_quarantine)
        # the devices of a line polled at one interval fall due together (one jitter draw per slot)
        cadence = cadences(config.device(name) for name in self.drivers)
        # the polls' commit is made as soon as the last poll of a round has ended if none falls due before
        # the batching delay ends (rather than when the delay ends)
        flight = PollsInFlight(self.clock, on_idle=self.pipeline.polls_done)
        self.pipeline.quiet = flight.quiet_for
        self.pollers = [Poller(config.device(name), drv, self.pipeline.submit, clock=self.clock, cadence=cadence[name],
                               flight=flight,
                               events=lambda body: self.pipeline.submit_message(Pending(Priority.EVENT, self.topics.event, body)))
                        for name, drv in self.drivers.items()]
        self.commands, self.site = self._make_control()
        self.homeassistant = self._make_homeassistant()
        self.remote = RemoteOps(config, config_files, now_ms=self.clock.now_ms, health=lambda: self.health().to_wire(),
                                devices=lambda: {p.name: p.health.report().model_dump() for p in self.pollers},
                                emit=self._emit_remote, trial=trial, doctor_checks=doctor_checks)
        self.stragglers: list[str] = []  # names of tasks that did not stop at shutdown
        self.started_mono = time.monotonic()
        self._trim_heap = heap_trimmer()

    # -- optional parts ---------------------------------------------------------------------------
    def _make_processor(self) -> Processor:
        return Processor(self.config, self.series, state_dir=self.state_dir, clock=self.clock)

    def _make_control(self):
        """Command router and site controller, writing through one gate audited on the audit topic, and
        charging by the very tariff (and emission factors) the energy ledger bills by."""

        def audit(record: dict) -> None:
            self.pipeline.submit_message(Pending(Priority.AUDIT, self.topics.audit, record))

        cfg = self.config
        devices = {d.name: d for d in cfg.devices}
        gate = WriteGate(devices, self.drivers, self.clock, timeout=cfg.commands.write_timeout, audit=audit)
        site = None
        if cfg.site is not None:
            from .site.controller import SiteController  # loaded only for a [site] table

            site = SiteController(cfg.site, self.drivers, self.latest, self.series, self.clock, self.processor.tariff,
                                  charger_configs={n: devices[n] for n in cfg.site.chargers},
                                  carbon=self.processor.ledger.carbon, gate=gate)
        ids = IdStore(cfg.gateway.state_dir / "commands.db", limit=cfg.commands.remember_ids)
        router = CommandRouter(cfg.commands, devices=devices, drivers=self.drivers, ids=ids, clock=self.clock,
                               site=site, gate=gate)
        return router, site

    def _make_homeassistant(self):
        if self.config.homeassistant is None:
            return None
        from .homeassistant.bridge import build_bridge

        return build_bridge(self.config, drivers=self.drivers, pollers=self.pollers, series=self.series,
                            latest=self.latest, state_dir=self.state_dir, publisher=lambda: self.uplink)

    # -- wiring ----------------------------------------------------------------------------------
    def _quarantined(self, q: Quarantined) -> None:
        """A damaged outbox was set aside (logged by the outbox): say so on the event topic."""
        if getattr(self, "pipeline", None) is not None:
            self.pipeline.submit_message(Pending(Priority.EVENT, self.topics.event, q.event(self.clock.now_ms())))

    def _committed(self) -> None:
        mark = time.monotonic()
        if self.uplink is not None:
            self.uplink.wake()
        for listener in self._commit_listeners:
            try:
                listener(mark)
            except Exception:  # noqa: BLE001 - one driver's bookkeeping must not break the commit loop
                log.exception("commit listener failed")

    async def _on_command(self, device: str, payload: bytes, retained: bool = False) -> None:
        """Answer on cmd/{device}/result (cmd//result for an empty device level) and audit, always."""
        await self.command(device, payload, retained=retained)

    async def command(self, device: str, payload: bytes, *, retained: bool = False, source: str = "mqtt") -> dict:
        """One command through the command path (gate, audit); its result is published and returned."""
        outcome = await self.commands.handle(device, payload, retained=retained, source=source)
        self.pipeline.submit_message(Pending(Priority.EVENT, self.topics.command_result(device), outcome.result))
        self.pipeline.submit_message(Pending(Priority.AUDIT, self.topics.audit, outcome.audit))
        return outcome.result

    def config_document(self) -> dict:
        """The config in force as JSON (secrets already starred by their type)."""
        return self.config.model_dump(mode="json")

    def writable_points(self) -> dict[str, list[str]]:
        """Devices a command can change, with what (for the web page's controls)."""
        out = {name: [str(p) for p in self.commands.gate.writable(name)] for name in self.drivers}
        if self.site is not None:
            for name in self.drivers:
                if self.site.manages(name):
                    out[name] = sorted({*out[name], "set_session"})
        return {name: points for name, points in out.items() if points}

    def _emit_remote(self, suffix: str, body: dict, audit: bool) -> None:
        self.pipeline.submit_message(Pending(Priority.AUDIT if audit else Priority.EVENT,
                                             f"{self.topics.base}/{suffix}", body))

    async def _on_remote(self, kind: str, payload: bytes, retained: bool = False) -> None:
        if kind == "config":
            await self.remote.on_config(payload, retained)
        else:
            await self.remote.on_ops(kind.removeprefix("ops/"), payload, retained)

    def health(self) -> HealthReport:
        # the uplink's first: it takes the PUBACKs waiting for the next cycle, so the outbox's depth leaves
        # out the rows they acknowledge
        uplink_stats = self.uplink.stats() if self.uplink else None
        return build_health(
            gateway=self.config.gateway.id, started_mono=self.started_mono, now_ms=self.clock.now_ms(),
            outbox_stats=self.outbox.stats(), uplink_stats=uplink_stats,
            pipeline_stats=self.pipeline.stats, pollers=self.pollers,
            processing=self.processor.summary(),
            buses=self.buses.stats(), clock=cached_time_sync_status(), config=self.remote.health_section(),
        )

    async def _first_poll_cycle(self, limit_s: float) -> None:
        """Wait until every device has been polled once (answered or failed), at most ``limit_s``: the
        first report then shows what the devices did, not "down, last good never" for working ones."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and any(p.health.polls_ok + p.health.polls_failed == 0
                                                  for p in self.pollers):
            await asyncio.sleep(0.1)

    def _write_starting_status(self) -> None:
        """The status file while the kernels are prepared: this agent's pid, every device "starting"."""
        with contextlib.suppress(Exception):  # the health loop reports (and logs) status file problems
            write_status(self.state_dir, self.health())

    async def _health_loop(self) -> None:
        status_error: str | None = None  # the status file failure logged last (logged once, not per report)
        report_error: str | None = None
        await self._first_poll_cycle(self.config.health.interval)
        while True:
            try:
                await asyncio.to_thread(refresh_time_sync_status)  # chronyc/ntpq off the event loop
                report = self.health()
                if self.uplink is not None:
                    self.uplink.publish_transient(self.topics.health, report.to_wire())
                up = sum(1 for p in self.pollers if p.health.up)
                self.notifier.status(f"{up}/{len(self.pollers)} devices up, buffer {report.buffer.depth} messages")
                try:
                    write_status(self.state_dir, report)
                except OSError as e:  # e.g. disk full: health still goes out over MQTT
                    if str(e) != status_error:
                        log.warning("cannot write the status file in %s: %s", self.state_dir, e)
                    status_error = str(e)
                else:
                    if status_error is not None:
                        log.info("status file written again")
                    status_error = None
                report_error = None
                if self._trim_heap is not None:  # after start-up, then each report (docs/processing.md)
                    self._trim_heap()
            except Exception as e:  # noqa: BLE001 - a health report failing must not stop the agent
                if repr(e) != report_error:
                    log.exception("health report failed")
                report_error = repr(e)
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

        self.uplink = Uplink(self.config.mqtt, self.config.gateway.id, self.outbox, on_command=self._on_command,
                             clock=self.clock, on_remote=self._on_remote, on_connected=self.remote.on_connected)
        # PUBACKs wait for the pipeline's next cycle instead of waking the loop (which cycles every 2 s at least)
        self.pipeline.before_cycle = self.uplink.ride_acks_on_commits()

    async def _start_metrics(self):
        """The local Prometheus endpoint when ``[metrics] enabled``; OSError naming a busy address."""
        if not self.config.metrics.enabled:
            return None
        from .metrics.server import MetricsServer

        server = MetricsServer(self.config.metrics, self.health)
        await server.start()
        return server

    async def _start_web(self):
        """The local status page when ``[web] enabled`` (imported only then); OSError naming a busy address."""
        if not self.config.web.enabled:
            return None
        from .web.server import WebServer
        from .web.view import EventLog

        events = EventLog(self.topics.event)
        self.pipeline.taps.append(events.tap)
        server = WebServer(self.config.web, self, event_log=events, state_dir=self.state_dir)
        await server.start()
        return server

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        metrics = web = None
        try:  # first: a busy metrics or web address fails the start at once, before kernels are compiled
            metrics = await self._start_metrics()
            web = await self._start_web()
        except OSError:
            if metrics is not None:
                await metrics.stop()
            await self.shutdown()
            raise
        self._write_starting_status()
        timing = await self._prepare_kernels()
        log.info("processing kernels ready in %.2f s (jit %s)", timing["import_s"] + timing["compile_s"], timing["jit"])
        await self._start_uplink()
        tasks = [asyncio.create_task(p.run(), name=f"poll:{p.name}") for p in self.pollers]
        tasks += [
            asyncio.create_task(self.pipeline.run(), name="pipeline"),
            asyncio.create_task(self.uplink.run(), name="uplink"),
            asyncio.create_task(self._health_loop(), name="health"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            asyncio.create_task(self._site_loop(), name="site"),
            asyncio.create_task(self.remote.watch_trial(lambda: self.uplink is not None and self.uplink.connected),
                                name="config-trial"),
        ]
        if self.homeassistant is not None:
            tasks.append(asyncio.create_task(self.homeassistant.run(), name="homeassistant"))
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
            if self.remote.restart is None:
                self.notifier.stopping()
            else:  # re-executing in place (same PID): systemd must not take it for a stop
                self.notifier.notify("RELOADING=1", f"STATUS=restarting to {self.remote.restart} a pushed config")
            for server in (metrics, web):
                if server is not None:
                    await server.stop()
            await self._stop_tasks(tasks)
            await self.shutdown()

    async def _prepare_kernels(self) -> dict:
        """Compile (or load from the cache) every kernel before the first batch, off the event loop.

        A cold cache (first start, after an upgrade, on a slow Pi) takes minutes: meanwhile systemd
        gets a STATUS and a start-timeout extension, and watchdog pings, every few seconds, so
        ``TimeoutStartSec`` cannot restart-loop the service; the pings stop if the event loop stalls.
        """
        interval = self.notifier.watchdog_interval if self.config.health.watchdog else None
        step = min(START_NOTIFY_S, interval or START_NOTIFY_S)
        job = asyncio.ensure_future(asyncio.to_thread(self.warm_kernels or self.processor.prepare))
        while True:
            self.notifier.extend_start(3 * step, "compiling processing kernels (first start after an install or upgrade)")
            if interval:
                self.notifier.watchdog()
            done, _ = await asyncio.wait({job}, timeout=step)
            if done:
                return job.result()

    async def _stop_tasks(self, tasks: list[asyncio.Task]) -> None:
        """Stop every task within a bounded time, whatever a driver does.

        A driver can swallow a cancellation (``asyncio.wait_for`` on Python 3.11 does when the awaited
        reply is already there), so pollers also get a stop flag, stragglers are cancelled again, and
        shutdown goes on without any task that still has not ended; those are logged by name.
        """
        for p in self.pollers:
            p.stop()
        pending = set(tasks)
        for _ in range(2):
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=TASK_STOP_S)
            if not pending:
                break
        self.stragglers = sorted(t.get_name() for t in pending)
        if self.stragglers:
            log.error("shutdown: %d task(s) did not stop within %.0f s, going on without them: %s",
                      len(self.stragglers), 2 * TASK_STOP_S, ", ".join(self.stragglers))

    async def shutdown(self) -> None:
        """Final commit, clean ``offline`` and outbox close; every step is bounded in time."""
        try:
            self.pipeline.cycle(final=True)  # commit whatever the pollers delivered last
        except Exception:  # noqa: BLE001 - the remaining steps must still run
            log.exception("shutdown: final commit failed")
        if self.uplink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.uplink.stop(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.buses.close(), TASK_STOP_S)
        self.outbox.close()


async def run_agent(config: AgentConfig, *, config_files: ConfigFiles | None = None,
                    trial: dict | None = None, doctor_checks: Callable[[], list[dict]] | None = None,
                    catalog: DriverCatalog | None = None, line_kinds: Mapping[str, LineKind] | None = None) -> RemoteOps:
    """Run until SIGTERM/SIGINT (or a config push asks for a restart), then shut down cleanly. Returns
    the remote operations state: ``restart`` tells ``run`` to re-execute (apply or roll back).

    ``config`` is the validated models or their plain twin (agent.contract.plain.to_plain). ``catalog``
    and ``line_kinds`` default to the installed drivers and line kinds (an entry-point scan); a process
    handed them (``DriverCatalog.from_references``, ``agent.bus.kinds.line_kinds_from_references``)
    scans nothing."""
    agent = Agent(config, catalog=catalog, config_files=config_files, trial=trial, doctor_checks=doctor_checks,
                  line_kinds=line_kinds)
    loop = asyncio.get_running_loop()
    main = asyncio.create_task(agent.run())

    def stop() -> None:  # a second signal must not interrupt the shutdown already under way
        if not main.cancelling():
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    agent.remote.stop = stop
    with contextlib.suppress(asyncio.CancelledError):
        await main
    if agent.stragglers:
        # asyncio.run() would wait for them forever; everything is committed and closed, so leave now
        logging.shutdown()
        if agent.remote.restart is not None and config_files is not None:
            from .remote.restart import finish_restart

            finish_restart(agent.remote, config_files)
        os._exit(0)
    return agent.remote
