"""Building energy checks: synthetic building days with seeded faults are found (with the kWh evidence),
clean days raise nothing; the same through the processor from a meter's energy register."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig  # noqa: E402
from agent.driver import Clock  # noqa: E402
from agent.model import Batch, MetricKind, MetricSpec  # noqa: E402
from agent.processing import ProcessingConfig, Processor  # noqa: E402
from agent.processing.building import BuildingChecks  # noqa: E402
from agent.series import SeriesTable  # noqa: E402

ZONE = "Asia/Shanghai"
Z = ZoneInfo(ZONE)
MONDAY = dt.datetime(2024, 5, 6, tzinfo=Z)


def day_kwh(date: dt.date, rng, *, night=10.0, occupied=50.0, open_h=8, close_h=18, faults=()) -> np.ndarray:
    """kWh of each local hour: the occupied load on workdays between open_h and close_h, else the base load."""
    weekend = date.weekday() >= 5
    h = np.arange(24)
    kwh = np.where(~weekend & (h >= open_h) & (h < close_h), occupied, night) * rng.normal(1.0, 0.05, 24)
    if "night" in faults:  # ventilation left running: 00-06 and 20-24 at half the occupied load
        kwh[(h < 6) | (h >= 20)] = 0.5 * occupied
    if "weekend" in faults and weekend:
        kwh[(h >= 8) & (h < 18)] = occupied
    return kwh


def feed(checks: BuildingChecks, days: int, faults: dict[int, tuple] | None = None, seed: int = 0, **kw) -> list[dict]:
    """Hourly energy bodies for ``days`` local days from a Monday, then the first hour of the next day."""
    rng = np.random.default_rng(seed)
    events = []
    for d in range(days + 1):
        date = (MONDAY + dt.timedelta(days=d)).date()
        kwh = day_kwh(date, rng, faults=(faults or {}).get(d, ()), **kw)
        for h in range(24 if d < days else 1):
            start = int(dt.datetime(date.year, date.month, date.day, h, tzinfo=Z).timestamp() * 1000)
            events += [dict(e, day=d) for e in checks.hour("m1", {"window": "1h", "start": start, "kwh": float(kwh[h])})]
    return events


def test_clean_building_weeks_raise_nothing():
    for seed in range(5):
        assert feed(BuildingChecks(ZONE, ["m1"]), 42, seed=seed) == []


def test_ventilation_running_all_night_is_reported_with_the_kwh_evidence():
    events = feed(BuildingChecks(ZONE, ["m1"]), 21, {16: ("night",)})  # Wednesday of the third week
    assert [(e["kind"], e["day"]) for e in events] == [("energy_base_load", 17)]  # reported when the day closed
    e = events[0]
    assert e["day_type"] == "workday" and e["hours"] == 10  # 00-06 and 20-24
    assert e["expected_kwh"] == pytest.approx(100, rel=0.1) and e["seen_kwh"] == pytest.approx(250, rel=0.01)
    assert e["excess_kwh"] == pytest.approx(e["seen_kwh"] - e["expected_kwh"], abs=0.01)
    day = int(dt.datetime(2024, 5, 22, tzinfo=Z).timestamp() * 1000)
    assert e["start"] == day and e["end"] == day + 86_400_000


def test_a_weekend_run_like_a_workday_is_reported():
    events = feed(BuildingChecks(ZONE, ["m1"]), 21, {19: ("weekend",)})  # the third Saturday
    assert [(e["kind"], e["day_type"]) for e in events] == [("energy_base_load", "weekend")]
    assert events[0]["hours"] == 10 and events[0]["seen_kwh"] > 4 * events[0]["expected_kwh"]


def test_a_schedule_shifted_by_two_hours_is_reported():
    rng = np.random.default_rng(1)
    checks = BuildingChecks(ZONE, ["m1"])
    events = []
    for d in range(22):
        date = (MONDAY + dt.timedelta(days=d)).date()
        kwh = day_kwh(date, rng, open_h=6 if d == 15 else 8, close_h=16 if d == 15 else 18)
        for h in range(24):
            start = int(dt.datetime(date.year, date.month, date.day, h, tzinfo=Z).timestamp() * 1000)
            events += checks.hour("m1", {"window": "1h", "start": start, "kwh": float(kwh[h])})
    kinds = [e["kind"] for e in events]
    assert kinds == ["energy_schedule_shift"], events
    e = events[0]
    assert e["expected_hours"] == [8, 18] and e["seen_hours"] == [6, 16]
    assert e["shift_start_h"] == -2 and e["shift_end_h"] == -2
    assert e["seen_kwh"] == pytest.approx(e["expected_kwh"], rel=0.15)  # same energy, other hours


def test_a_day_with_missing_hours_is_not_checked_and_faulty_days_do_not_teach():
    checks = BuildingChecks(ZONE, ["m1"])
    events = feed(checks, 28, {14: ("night",), 15: ("night",), 16: ("night",)})
    assert [e["day"] for e in events] == [15, 16, 17]  # the third night is as wrong as the first


class Meter(DeviceConfig):
    pass


def test_the_processor_reports_a_base_load_fault_from_the_energy_register(tmp_path):
    """Energy register read every five minutes for 12 days; ventilation on all of the tenth night."""
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(Meter(name="m1", type="meter", poll_interval=300.0),),
                      processing=ProcessingConfig(jit="off", timezone=ZONE))
    table = SeriesTable()
    table.add_device("m1", [MetricSpec("energy", "kWh", MetricKind.COUNTER)])
    proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
    t0 = int(MONDAY.timestamp() * 1000)
    n = 12 * 288
    ts = t0 + np.arange(n, dtype=np.int64) * 300_000
    local_h = ((ts + 8 * 3_600_000) // 3_600_000) % 24
    day = np.arange(n) // 288
    weekend = np.isin(day % 7, (5, 6))
    kw = np.where(~weekend & (local_h >= 8) & (local_h < 18), 50.0, 10.0)
    kw[(day == 9) & ((local_h < 6) | (local_h >= 20))] = 25.0
    energy = 1000.0 + np.cumsum(kw / 12.0)
    events = []
    for i in range(0, n, 288):
        b = Batch.from_columns(np.zeros(288, np.int32), ts[i:i + 288], energy[i:i + 288])
        events += proc.process(b, int(ts[i + 287]) + 1000).events
        events += proc.flush(int(ts[i + 287]) + 300_000).events
    found = [e for e in events if e["kind"].startswith("energy_")]
    assert [e["kind"] for e in found] == ["energy_base_load"]
    assert found[0]["device"] == "m1" and found[0]["hours"] == 10
    assert found[0]["seen_kwh"] == pytest.approx(250, rel=0.05) and found[0]["expected_kwh"] == pytest.approx(100, rel=0.05)
