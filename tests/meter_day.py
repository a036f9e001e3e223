"""Ordinary operation in simulated time, fast: the meter simulators' own value model (the one the pymodbus
simulator serves, encoded and decoded through each register's spec exactly as the driver decodes it),
with load steps, fed through the shipped processing stage. Used by the false-alarm test and bench."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
from agent.driver import Clock
from agent.model import Batch, MetricSpec
from agent.processing import Processor
from agent.series import SeriesTable
from drivers.modbus_meter.codec import load_profile
from drivers.modbus_meter.facts import metric_facts
from drivers.modbus_meter.simmodel import MeterModel

DAY_S = 86_400
T0 = 1_714_953_600_000  # 2024-05-06 00:00 UTC


class Dev(DeviceConfig):
    pass


@dataclass
class SimMeter:
    """One simulated meter: a profile (optionally a subset of its metrics) with random load steps of
    ``step`` (up or down) every ``step_every_s`` seconds on average."""

    name: str
    profile: str
    metrics: tuple[str, ...] | None = None
    poll_s: float = 1.0
    step: float = 0.02
    step_every_s: float = 300.0
    seed: int = 0

    def specs(self) -> tuple[list, list[MetricSpec]]:
        prof = load_profile(self.profile)
        regs = [r for r in prof.resolve() if self.metrics is None or r.name in self.metrics]
        return regs, [metric_facts(r.metric(), prof.profile) for r in regs]

    def batches(self, seconds: float, *, per_call: int = 60, t0: int = T0) -> Iterator[Batch]:
        regs, _ = self.specs()
        model = MeterModel(seed=self.seed, start_hour=0.0)
        rng = random.Random(self.seed)
        next_step = rng.expovariate(1.0 / self.step_every_s)
        n, polls = len(regs), int(seconds / self.poll_s)
        sids = np.arange(n, dtype=np.int32)
        for first in range(0, polls, per_call):
            k = min(per_call, polls - first)
            v = np.empty((k, n))
            ts = np.empty((k, n), np.int64)
            for j in range(k):
                t = (first + j) * self.poll_s
                while t >= next_step:  # an appliance switches on or off
                    model.load *= 1.0 + self.step if rng.random() < 0.5 or model.load < 0.9 else 1.0 - self.step
                    next_step += rng.expovariate(1.0 / self.step_every_s)
                model.advance(self.poll_s if first + j else 0.0)
                v[j] = [r.value(r.raw_for(model.value(r.name, r.unit))) for r in regs]
                ts[j] = t0 + int(t * 1000)
            yield Batch.from_columns(np.tile(sids, k), ts.ravel(), v.ravel())


def events_per_meter(meters: list[SimMeter], seconds: float, state_dir: Path, *, jit: str = "auto") -> dict[str, int]:
    """anomaly_start events per meter over ``seconds`` of ordinary operation at the shipped defaults."""
    from agent.processing.config import ProcessingConfig

    table = SeriesTable()
    devs = []
    for m in meters:
        table.add_device(m.name, m.specs()[1])
        devs.append(Dev(name=m.name, type="modbus_meter", poll_interval=m.poll_s))
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=tuple(devs), processing=ProcessingConfig(jit=jit))
    proc = Processor(cfg, table, state_dir=state_dir, clock=Clock())
    proc.prepare()
    counts = {m.name: 0 for m in meters}
    for m in meters:
        base = table.base(m.name)
        for b in m.batches(seconds):
            b.series += base
            for e in proc.process(b, int(b.ts[-1])).events:
                counts[e["device"]] += e["kind"] == "anomaly_start"
    return counts
