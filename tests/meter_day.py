"""Ordinary operation in simulated time, fast: the meter simulators' own value model (the one the pymodbus
simulator serves, encoded and decoded through each register's spec exactly as the driver decodes it),
with load steps, fed through the shipped processing stage. Used by the false-alarm test and bench."""

from __future__ import annotations

import dataclasses
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

    def registers(self) -> list:
        return [r for r in load_profile(self.profile).resolve() if self.metrics is None or r.name in self.metrics]

    def specs(self) -> list[MetricSpec]:
        return [metric_facts(r.metric(), load_profile(self.profile).profile) for r in self.registers()]

    def batches(self, seconds: float, *, per_call: int = 60, t0: int = T0) -> Iterator[Batch]:
        regs = self.registers()
        model = MeterModel(seed=self.seed, start_hour=0.0)
        rng = random.Random(self.seed)
        next_step = rng.expovariate(1.0 / self.step_every_s)
        n, polls = len(regs), int(seconds / self.poll_s)
        floats = all(r.type.value == "float32" for r in regs)
        scale = np.array([r.scale for r in regs])
        offset = np.array([r.offset for r in regs])
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
                v[j] = [model.value(r.name, r.unit) for r in regs]
                ts[j] = t0 + int(t * 1000)
            if floats:  # what the driver decodes: float32 registers round-tripped (as r.value(r.raw_for(x)))
                v = ((v - offset) / scale).astype(np.float32).astype(np.float64) * scale + offset
            else:
                v = np.array([[r.value(r.raw_for(x)) for r, x in zip(regs, row, strict=True)] for row in v])
            yield Batch.from_columns(np.tile(sids, k), ts.ravel(), v.ravel())


@dataclass
class SimAir:
    """The PMS5003 simulator's readings (its slow random walk), each frame encoded and decoded by the codec
    and turned into samples by the driver's own frame check."""

    name: str
    poll_s: float = 2.0
    seed: int = 0

    def specs(self) -> list[MetricSpec]:
        from drivers.pms5003.driver import METRICS

        return list(METRICS)

    def batches(self, seconds: float, *, per_call: int = 60, t0: int = T0) -> Iterator[Batch]:
        from drivers.pms5003 import codec
        from drivers.pms5003.driver import frame_samples
        from drivers.pms5003.sim import Pms5003Sim

        sim = Pms5003Sim(vary=True, seed=self.seed)
        index = {m.name: i for i, m in enumerate(self.specs())}
        polls = int(seconds / self.poll_s)
        for first in range(0, polls, per_call):
            rows = []
            for j in range(first, min(first + per_call, polls)):
                samples = frame_samples(codec.decode(codec.encode(sim._next_reading())))
                rows.append(Batch.from_samples(samples, index, t0 + int(j * self.poll_s * 1000)))
            yield Batch.concat(rows)


def events_per_meter(meters: list, seconds: float, state_dir: Path, *, jit: str = "auto",
                     per_metric: bool = False) -> dict[str, int]:
    """anomaly_start events per device over ``seconds`` of ordinary operation at the shipped defaults.
    ``per_metric``: instead, per-metric anomaly starts with every gauge watched and no significance
    floor (the detector as it was before events were grouped per device), for comparison."""
    from agent.processing.config import ProcessingConfig

    table = SeriesTable()
    devs = []
    for m in meters:
        specs = m.specs()
        if per_metric:
            specs = [dataclasses.replace(x, anomaly=True, significant=0.0, significant_rel=0.0) for x in specs]
        table.add_device(m.name, specs)
        devs.append(Dev(name=m.name, type="modbus_meter", poll_interval=m.poll_s))
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=tuple(devs), processing=ProcessingConfig(jit=jit))
    proc = Processor(cfg, table, state_dir=state_dir, clock=Clock())
    proc.prepare()
    counts = {m.name: 0 for m in meters}
    for m in meters:
        base = table.base(m.name)
        for b in m.batches(seconds):
            b.series += base
            before = proc.events.series_started
            for e in proc.process(b, int(b.ts[-1])).events:
                counts[e["device"]] += e["kind"] == "anomaly_start" and not per_metric
            if per_metric:
                counts[m.name] += proc.events.series_started - before
    return counts
