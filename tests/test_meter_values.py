"""Every published meter value true or flagged: energy counters and anomaly events as a user receives
them. A real pymodbus meter simulator read by the real driver over Modbus TCP, the shipped processing
stage (quality bits, energy ledger, anomaly events) at its defaults; simulated time is injected."""

from __future__ import annotations

import datetime as dt
import os
import socket
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from agent.bus import LINE_KINDS, BusPool  # noqa: E402
from agent.config import load_config_text  # noqa: E402
from agent.driver import Clock, DriverCatalog, DriverContext  # noqa: E402
from agent.model import Batch, Quality  # noqa: E402
from agent.processing import Processor  # noqa: E402
from agent.series import SeriesTable  # noqa: E402
from drivers import pms5003  # noqa: E402
from drivers.modbus_meter.sim import start  # noqa: E402
from tests.meter_day import DAY_S, SimMeter, events_per_meter  # noqa: E402

SH = dt.timezone(dt.timedelta(hours=8))  # the default tariff's time zone (Asia/Shanghai)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimClock(Clock):
    def __init__(self, t_ms: int):
        self.t = t_ms

    def now_ms(self) -> int:
        return self.t


class MeterRig:
    """The SDM630 simulator, the real driver reading it over TCP, and the processing stage."""

    def __init__(self, port: int, tmp: Path, t0: int, *, poll: float,
                 device: str = 'energy = { metric = "energy_import" }'):
        self.cfg = load_config_text(
            f'[gateway]\nid = "g"\n[lines.l]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 10\n'
            f'[[devices]]\nname = "m"\ntype = "modbus_meter"\nline = "l"\nprofile = "sdm630"\npoll_interval = {poll}\n{device}')
        self.pool = BusPool(self.cfg.lines, LINE_KINDS)
        self.clock = SimClock(t0)
        dev = self.cfg.devices[0]
        self.driver = DriverCatalog.discover().get("modbus_meter").factory(
            dev, DriverContext(gateway="g", state_dir=tmp, buses=self.pool, clock=self.clock))
        table = SeriesTable()
        table.add_device("m", self.driver.metrics())
        self.names = [m.name for m in self.driver.metrics()]
        self.proc = Processor(self.cfg, table, state_dir=tmp, clock=self.clock)
        self.poll_ms = int(poll * 1000)
        self.energy: list[dict] = []
        self.events: list[dict] = []

    async def poll(self, sim) -> dict[str, tuple[float, int]]:
        """Advance the simulator and the clock by one poll interval, read, process; (value, q) by metric."""
        await sim.step(self.poll_ms / 1000)
        self.clock.t += self.poll_ms
        b = await self.driver.read()
        r = self.proc.process(b, self.clock.t)
        self.events += r.events
        self.energy += [body for _, body in self.proc.flush(self.clock.t).energy]
        return {self.names[int(s)]: (float(v), int(q)) for s, v, q in zip(b.series, b.value, b.quality, strict=True)}

    def close_hours(self) -> None:
        self.energy += [body for _, body in self.proc.flush(self.clock.t + 3_600_000).energy]

    async def close(self) -> None:
        await self.pool.close()


@pytest.fixture
async def meter():
    port = free_port()
    sim = await start(profile="sdm630", tcp=f"127.0.0.1:{port}", update_interval=None)
    try:
        yield sim, port
    finally:
        await sim.stop()


# -- energy counters ---------------------------------------------------------------------------

async def test_a_one_sample_glitch_is_never_booked_and_the_true_readings_after_it_stay_good(meter, tmp_path):
    sim, port = meter
    rig = MeterRig(port, tmp_path, int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=SH).timestamp() * 1000), poll=1.0)
    try:
        first = (await rig.poll(sim))["energy_import"][0]
        seen = []
        for k in range(12):
            if k == 5:  # a torn read: +50,000 kWh for one sample
                await sim.pin(1, "energy_import", sim.values["energy_import"] + 50_000.0)
            seen.append((await rig.poll(sim))["energy_import"])
            if k == 5:
                await sim.unpin(1, "energy_import")
        last = seen[-1][0]
        rig.close_hours()
    finally:
        await rig.close()
    assert seen[5][0] > first + 49_000 and seen[5][1] & Quality.SPIKE  # published as read, flagged
    assert [q for _, q in seen[:5] + seen[6:]] == [0] * 11  # the true readings around it are not flagged
    (hour,) = rig.energy
    assert hour["kwh"] == pytest.approx(last - first, abs=1e-3)  # not 50,009 kWh
    assert hour["cost"] < 1.0 and rig.proc.summary()["counter_resets"] == 0


async def test_a_persistent_jump_becomes_the_new_level_only_after_agreeing_reads(meter, tmp_path):
    sim, port = meter
    rig = MeterRig(port, tmp_path, int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=SH).timestamp() * 1000), poll=1.0)
    try:
        first = (await rig.poll(sim))["energy_import"][0]
        await sim.pin(1, "energy_import", first + 50_000.0)  # a meter swapped for one that reads higher
        seen = [(await rig.poll(sim))["energy_import"] for _ in range(5)]
        rig.close_hours()
    finally:
        await rig.close()
    assert [bool(q & Quality.SPIKE) for _, q in seen] == [True, True, True, False, False]
    assert rig.energy[0]["kwh"] == pytest.approx(0.0, abs=1e-3)  # the jump itself is never energy
    assert rig.proc.summary()["counter_resets"] == 1


async def test_a_declared_max_power_bounds_the_step(meter, tmp_path):
    sim, port = meter  # a 1 kW site cap: a step of 0.1 kWh in 10 s is impossible (at most 1.5 x 1 kW x 10 s)
    rig = MeterRig(port, tmp_path, int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=SH).timestamp() * 1000), poll=10.0,
                   device='energy = { metric = "energy_import", max_power_w = 1000 }')
    try:
        first = (await rig.poll(sim))["energy_import"][0]
        await sim.pin(1, "energy_import", first + 0.1)
        glitch = (await rig.poll(sim))["energy_import"]
    finally:
        await rig.close()
    assert glitch[1] & Quality.SPIKE


async def test_a_stuck_counter_that_catches_up_is_spread_over_its_gap(meter, tmp_path):
    sim, port = meter
    t0 = int(dt.datetime(2024, 5, 6, 10, 30, tzinfo=SH).timestamp() * 1000)  # peak until 11:00, then flat
    rig = MeterRig(port, tmp_path, t0, poll=60.0)
    try:
        first = (await rig.poll(sim))["energy_import"][0]
        for _ in range(10):
            await rig.poll(sim)
        await sim.pin(1, "energy_import", sim.values["energy_import"])  # the register stops at 10:41 ...
        stuck = [(await rig.poll(sim))["energy_import"] for _ in range(100)]  # ... until 12:21
        await sim.unpin(1, "energy_import")
        catch_up = await rig.poll(sim)
        for _ in range(10):
            last = (await rig.poll(sim))["energy_import"][0]
        rig.close_hours()
    finally:
        await rig.close()
    assert len({v for v, _ in stuck}) == 1 and catch_up["energy_import"][1] == 0  # true values: not flagged
    hours = {}
    for body in rig.energy:
        h = hours.setdefault(body["start"], {"kwh": 0.0, "estimated_kwh": 0.0})
        h["kwh"] += body["kwh"]
        h["estimated_kwh"] += body.get("estimated_kwh", 0.0)
    assert sum(h["kwh"] for h in hours.values()) == pytest.approx(last - first, abs=2e-3)  # nothing lost
    per_ms = (last - first) / (rig.clock.t - t0 - 60_000)  # a near-constant load in these simulated hours
    for start_ms, h in hours.items():  # each hour holds its own share, not the catch-up hour all of it
        inside = min(start_ms + 3_600_000, rig.clock.t) - max(start_ms, t0 + 60_000)
        assert h["kwh"] == pytest.approx(per_ms * inside, rel=0.1), (start_ms, hours)
    h11 = hours[int(dt.datetime(2024, 5, 6, 11, 0, tzinfo=SH).timestamp() * 1000)]
    assert h11["estimated_kwh"] == pytest.approx(h11["kwh"])  # stuck all hour: all of it estimated
    assert any(b.get("supplement") for b in rig.energy)  # 10:00 and 11:00 were published before the catch-up


# -- anomaly events ----------------------------------------------------------------------------

async def test_ordinary_2_percent_load_steps_raise_no_event(meter, tmp_path):
    sim, port = meter
    rig = MeterRig(port, tmp_path, int(dt.datetime(2024, 5, 6, 12, 0, tzinfo=SH).timestamp() * 1000), poll=2.0)
    try:
        for k in range(1200):  # 40 minutes; a 2 % load step every 2 minutes after the first 10
            if k >= 300 and k % 60 == 0:
                await sim.load_step(1, 1.02 if (k // 60) % 2 else 1 / 1.02)
            await rig.poll(sim)
    finally:
        await rig.close()
    assert [e for e in rig.events if e["kind"] == "anomaly_start"] == []


async def test_a_voltage_sag_is_one_event_listing_its_metrics(meter, tmp_path):
    sim, port = meter
    rig = MeterRig(port, tmp_path, int(dt.datetime(2024, 5, 6, 12, 0, tzinfo=SH).timestamp() * 1000), poll=2.0)
    try:
        for _ in range(300):
            await rig.poll(sim)
        for ph in ("l1", "l2", "l3"):
            await sim.pin(1, f"voltage_{ph}", 190.0)
        for _ in range(5):
            await rig.poll(sim)
        for ph in ("l1", "l2", "l3"):
            await sim.unpin(1, f"voltage_{ph}")
        for _ in range(60):
            await rig.poll(sim)
    finally:
        await rig.close()
    kinds = [e["kind"] for e in rig.events]
    assert kinds == ["anomaly_start", "anomaly_end"], rig.events
    start, end = rig.events
    assert {m["metric"] for m in start["metrics"]} == {"voltage_l1", "voltage_l2", "voltage_l3"}
    assert start["metric"] in {"voltage_l1", "voltage_l2", "voltage_l3"} and start["score"] >= 0.5
    assert {m["metric"] for m in end["metrics"]} >= {"voltage_l1", "voltage_l2", "voltage_l3"}
    assert end["start"] == start["ts"]


def test_a_reading_flagged_out_of_range_does_not_teach_the_detector(tmp_path):
    cfg = load_config_text('[gateway]\nid = "g"\n[lines.air]\ntype = "serial"\nport = "/dev/null"\n'
                           '[[devices]]\nname = "pm"\ntype = "pms5003"\nline = "air"\npoll_interval = 2.0\n'
                           'checks.pm2_5 = { max = 5000 }\n')
    table = SeriesTable()
    table.add_device("pm", pms5003.driver.METRICS)
    proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
    sid = table.id("pm", "pm2_5")
    rng = np.random.default_rng(1)
    values = list(np.round(12 + 3 * rng.random(400))) + [65535.0] + list(np.round(12 + 3 * rng.random(50))) + [2000.0]
    events, q = [], []
    for k, v in enumerate(values):
        b = Batch.from_columns([sid], [1_714_953_600_000 + 2000 * k], [v])
        events += proc.process(b, int(b.ts[0])).events
        q.append(int(b.quality[0]))
    assert q[400] & Quality.OUT_OF_RANGE
    assert q[-1] & Quality.ANOMALY  # 2,000 ug/m3 after a quiet room is still an anomaly
    assert [(e["kind"], e["value"]) for e in events] == [("anomaly_start", 2000.0)]


def test_false_alarm_budget_on_simulated_meters(tmp_path):
    """The documented budget: at most one anomaly event per device-day with ordinary 2 % load steps
    (a step every five minutes on average) on every shipped meter profile. Six simulated hours here;
    tests/bench/bench_nab.py measures full days."""
    meters = [SimMeter(p, p, seed=i, poll_s=2.0) for i, p in enumerate(("sdm630", "sdm120", "ddsu666", "dtsu666"))]
    hours = 6
    counts = events_per_meter(meters, hours * 3600, tmp_path)
    assert all(c <= max(1, int(hours * 3600 / DAY_S)) for c in counts.values()), counts


def test_max_step_kwh_still_caps_a_step(tmp_path):
    from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
    from agent.model import MetricKind, MetricSpec

    class Dev(DeviceConfig):
        pass

    readings = [100.0, 100.1, 101.1, 100.2]  # a +1 kWh glitch in 10 s: possible for a 1 MW supply, not under the cap
    for cap, flagged in ((None, [0, 0, 0, int(Quality.IMPLAUSIBLE)]), (0.5, [0, 0, int(Quality.SPIKE), 0])):
        energy = {"metric": "e"} if cap is None else {"metric": "e", "max_step_kwh": cap}
        cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(Dev(name="d", type="x", poll_interval=10.0, energy=energy),))
        table = SeriesTable()
        table.add_device("d", [MetricSpec("e", "kWh", MetricKind.COUNTER)])
        proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
        q = []
        for k, v in enumerate(readings):
            b = Batch.from_columns([0], [1_714_953_600_000 + 10_000 * k], [v])
            proc.process(b, int(b.ts[0]))
            q.append(int(b.quality[0]))
        assert q == flagged
        assert proc.summary()["energy"]["d"]["today"]["kwh"] == pytest.approx(1.1 if cap is None else 0.2)
