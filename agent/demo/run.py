"""``edge-agent demo``: everything on one machine with only pip installed.

Starts an embedded broker, device simulators, the agent (in this process) and an upstream
subscriber, shows readings flowing live, then takes the broker down for a while so you can watch
the outbox fill up and drain in order when it comes back, with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ..app import Agent
from ..broker import EmbeddedBroker
from ..config import load_config_text
from .sims import STARTERS, DemoSims
from .watch import UpstreamWatch

GATEWAY = "demo-gw"


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


def _view(agent: Agent, watch: UpstreamWatch, broker_up: bool, phase: str, started: float) -> Group:
    ob = agent.outbox.stats()
    up = agent.uplink.stats() if agent.uplink else {}
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]t+{time.monotonic() - started:4.0f}s[/]",
        f"broker: {'[green]up[/]' if broker_up else '[red]DOWN[/]'}",
        f"uplink: {'[green]connected[/]' if up.get('connected') else '[yellow]reconnecting[/]'}",
        f"buffer: [bold]{ob.depth}[/] msgs",
        f"publish: {up.get('rate_readings', 0):.0f} readings/s",
        f"upstream: {watch.readings} readings, seq gaps {watch.missing_seqs()}, dups {watch.duplicates}",
    )
    devices = Table(title="devices", expand=True)
    for col in ("device", "state", "polls", "latency ms"):
        devices.add_column(col)
    for p in agent.pollers:
        h = p.health
        state = "[red]stale[/]" if h.stale else ("[green]up[/]" if h.up else "[red]down[/]")
        devices.add_row(p.name, state, str(h.polls_ok), f"{h.latency_ewma_s * 1000:.1f}")
    values = Table(title="latest upstream values", expand=True)
    for col in ("device", "metric", "value", "q"):
        values.add_column(col)
    with watch.lock:
        latest = sorted(watch.latest.items())[:24]
        events = list(watch.events)
    for (dev, metric), (v, unit, q) in latest:
        values.add_row(dev, metric, "—" if v is None else f"{v:.4g} {unit}", str(q) if q else "")
    body = [Panel(head, title=f"edge-agent demo — {phase}"), devices, values]
    if events:
        body.append(Panel("\n".join(events), title="events"))
    return Group(*body)


async def run_demo(*, duration: float, outage_at: float | None, outage_len: float, console: Console) -> dict:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
        broker = EmbeddedBroker()
        await broker.start()
        sims = DemoSims()
        for starter in STARTERS:
            await starter(sims)
        cfg = load_config_text(demo_config(Path(tmp), broker.port, "".join(sims.toml) + sims.site_toml), source="demo")
        agent = Agent(cfg)
        watch = UpstreamWatch(broker.host, broker.port, cfg.mqtt.topic_prefix, GATEWAY)
        watch.start()
        task = asyncio.create_task(agent.run())
        started = time.monotonic()
        phase = "readings flowing"
        live_ctx = Live(console=console, refresh_per_second=4, transient=False) if console.is_terminal else contextlib.nullcontext()
        try:
            with live_ctx as live:
                last_print = 0.0
                while (elapsed := time.monotonic() - started) < duration:
                    if task.done():
                        task.result()
                    if outage_at is not None and broker.running and outage_at <= elapsed < outage_at + outage_len:
                        await broker.stop()
                        phase = f"broker outage for {outage_len:.0f} s: the outbox holds everything"
                    elif not broker.running and elapsed >= (outage_at or 0) + outage_len:
                        await broker.start()
                        phase = "broker back: backlog delivered in order"
                    view = _view(agent, watch, broker.running, phase, started)
                    if live is not None:
                        live.update(view)
                    elif elapsed - last_print >= 5:
                        last_print = elapsed
                        console.print(view)
                    await asyncio.sleep(0.25)
                # let the backlog drain before judging
                deadline = time.monotonic() + 30
                while agent.outbox.stats().depth and time.monotonic() < deadline:
                    await asyncio.sleep(0.25)
                await asyncio.sleep(1.0)
                if live is not None:
                    live.update(_view(agent, watch, broker.running, "finished", started))
            left = agent.outbox.stats().depth
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            watch.stop()
            await sims.stop()
            await broker.stop()
        return {"readings_upstream": watch.readings, "seq_gaps": watch.missing_seqs(),
                "duplicates": watch.duplicates, "left_in_buffer": left}
