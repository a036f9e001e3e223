"""Runs simulated gateways: a few worker processes, each an asyncio loop driving its share."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from agent.config.schema import MqttConfig, MqttProtocol
from agent.fleet.gateway import SimGateway

log = logging.getLogger("edge_agent.fleet")


@dataclass(frozen=True)
class FleetSpec:
    gateways: int
    processes: int
    hosts: tuple[str, ...]
    state_dir: Path
    protocol: MqttProtocol = MqttProtocol.V311
    prefix: str = "edge"
    id_prefix: str = "gw"
    interval: float = 1.0  # seconds between a gateway's telemetry messages
    readings: int = 10  # readings per telemetry message
    duration: float = 30.0
    resend: float = 0.0  # probability per cycle of publishing a stored message again
    energy_every: int = 60  # cycles per energy aggregate (0: none)
    drain_timeout: float = 120.0
    seed: int = 1


def gateway_ids(spec: FleetSpec) -> list[str]:
    return [f"{spec.id_prefix}{i:05d}" for i in range(spec.gateways)]


async def _run_share(spec: FleetSpec, ids: list[str], index0: int, stop: asyncio.Event) -> list[dict]:
    gws = []
    for k, gid in enumerate(ids):
        i = index0 + k
        hosts = spec.hosts[i % len(spec.hosts):] + spec.hosts[:i % len(spec.hosts)]  # spread over the nodes
        cfg = MqttConfig(hosts=hosts, protocol=spec.protocol, topic_prefix=spec.prefix)
        gws.append(SimGateway(gid, spec.state_dir, cfg, readings=spec.readings, interval=spec.interval,
                              resend=spec.resend, energy_every=spec.energy_every, rnd=random.Random(spec.seed * 100_003 + i)))
    for g in gws:
        g.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + spec.duration
    n = 0
    # every gateway ticks once per interval, spread evenly over it
    while not stop.is_set() and loop.time() < end:
        cycle0 = t0 + n * spec.interval
        for k, g in enumerate(gws):
            due = cycle0 + spec.interval * k / len(gws)
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            g.tick(n)
        n += 1
    deadline = loop.time() + spec.drain_timeout
    while loop.time() < deadline and any(g.outbox.stats().depth for g in gws):
        for g in gws:
            g.uplink.wake()
        await asyncio.sleep(0.5)
    reports = await asyncio.gather(*(g.stop() for g in gws))
    return [dataclasses.asdict(r) for r in reports]


def _worker(spec: FleetSpec, ids: list[str], index0: int, out: Path) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"fleet[{index0}] %(levelname)s %(name)s: %(message)s")

    async def main() -> list[dict]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        return await _run_share(spec, ids, index0, stop)
    reports = asyncio.run(main())
    out.write_bytes(orjson.dumps(reports))


def run_fleet(spec: FleetSpec) -> dict:
    """Run the fleet to the end of ``duration`` and the drain; the summary of every gateway."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    ids = gateway_ids(spec)
    per = -(-len(ids) // spec.processes)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    t0 = time.monotonic()
    for p in range(spec.processes):
        share = ids[p * per:(p + 1) * per]
        if share:
            out = spec.state_dir / f"report-{p}.json"
            out.unlink(missing_ok=True)
            proc = ctx.Process(target=_worker, args=(spec, share, p * per, out), name=f"fleet-{p}")
            proc.start()
            procs.append((proc, out))

    def forward(sig, _frame) -> None:
        for proc, _ in procs:
            if proc.pid is not None and proc.is_alive():
                proc.terminate()
    old = signal.signal(signal.SIGTERM, forward)
    try:
        for proc, _ in procs:
            proc.join()
    finally:
        signal.signal(signal.SIGTERM, old)
    gateways = []
    for proc, out in procs:
        if proc.exitcode != 0 or not out.exists():
            raise RuntimeError(f"fleet worker {proc.name} failed (exit code {proc.exitcode})")
        gateways += orjson.loads(out.read_bytes())
    return {
        "gateways": gateways,
        "messages": sum(g["messages"] for g in gateways),
        "readings": sum(g["readings"] for g in gateways),
        "resends": sum(g["resends"] for g in gateways),
        "undelivered": sum(g["depth"] for g in gateways),
        "elapsed_s": round(time.monotonic() - t0, 2),
    }
