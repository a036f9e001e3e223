"""Detector signals for shape and time: flat line (lost variability), the step signal (a new way of moving)
and the time-of-day / day-of-week baseline. Causal, scale invariant, in local time across DST, numba build == plain Python build."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from agent.model import Quality
from agent.processing import kernels
from agent.processing.jit import py_func
from agent.processing.kernels.detect import EV_START, EV_START_FLAT, EV_START_STEP, EV_START_TOD
from agent.processing.localtime import ZoneTable, tz_table
from tests.detect_helpers import detect, shipped
from tests.detect_helpers import run_series as run

STARTS = (EV_START, EV_START_FLAT, EV_START_TOD, EV_START_STEP)
FIVE_MIN = 300_000


def building(days: int, zone: str, seed: int, start=dt.datetime(2024, 3, 4)):
    """A building's power every five minutes from a Monday 00:00 local: about 50 kW on workdays 08-18
    local, 10 kW otherwise, with noise. Returns (ts UTC ms, values, local hour, local weekday)."""
    z = ZoneInfo(zone)
    t0 = int(start.replace(tzinfo=z).timestamp() * 1000)
    ts = t0 + np.arange(days * 288, dtype=np.int64) * FIVE_MIN
    loc = [dt.datetime.fromtimestamp(t / 1000, z) for t in ts.tolist()]
    hour = np.array([x.hour for x in loc])
    wday = np.array([x.weekday() for x in loc])
    occupied = (wday < 5) & (hour >= 8) & (hour < 18)
    rng = np.random.default_rng(seed)
    v = np.where(occupied, 50.0, 10.0) + rng.normal(0, 1.0, len(ts))
    return ts, v, hour, wday


# ---- step signal ---------------------------------------------------------------------------------


def jittery(seed=3, n=288 * 12, at=288 * 9):
    """A daily sine every five minutes (20 +- 5, small noise) that, for five hours from ``at``, starts to
    jitter by +-1.5 around its usual course: every value of an ordinary size, the way it moves is new."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    v = 20 + 5 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 0.1, n)
    seg = slice(at, at + 60)
    v[seg] += np.where(i[seg] % 2 == 0, 1.5, -1.5)
    return 1_704_067_200_000 + i.astype(np.int64) * FIVE_MIN, v


def test_a_series_that_starts_to_jitter_within_its_usual_size_starts_a_step_event():
    ts, v = jittery()
    _, ev, q, _ = run(v, ts)
    starts = np.nonzero(np.isin(ev, STARTS))[0]
    late = starts[starts >= 288]  # after the first cycle (while the range is learnt the size part may fire)
    assert len(late) == 1 and ev[late[0]] == EV_START_STEP and 288 * 9 <= late[0] < 288 * 9 + 12
    _, ev_off, _, _ = run(v, ts, prm=shipped(step=False))
    assert not np.isin(ev_off[288:], STARTS).any()  # the size of the values alone shows nothing
    assert not (q[288 * 9:] & int(Quality.ANOMALY)).any()  # the bit marks sizes only


def test_the_step_signal_is_causal_scale_invariant_and_jit_equals_python():
    ts, v = jittery()
    a = run(v, ts)
    assert (a[1] == EV_START_STEP).any()
    b = run(v * 1000 + 7, ts)
    assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-6)
    for cut in (288 * 9 - 5, 288 * 9 + 3):
        w = v.copy()
        w[cut:] = np.random.default_rng(cut).normal(500, 100, len(v) - cut)
        c = run(w, ts)
        for x, y in zip(a[:3], c[:3], strict=True):
            assert np.array_equal(x[:cut], y[:cut])
    d = run(v, ts, fn=py_func(detect.detect_step))
    for x, y in zip(a, d, strict=True):
        assert np.array_equal(x, y)


# ---- flat line ------------------------------------------------------------------------------------


def test_a_sensor_that_stops_varying_starts_a_flat_line_event():
    rng = np.random.default_rng(1)
    v = 20 + np.cumsum(rng.normal(0, 0.1, 4000)) * 0.1 + rng.normal(0, 0.3, 4000)
    v[3000:] = v[2999]  # frozen at an ordinary value: size alone never sees it
    ts = 1_704_067_200_000 + np.arange(4000, dtype=np.int64) * 60_000
    score, ev, q, _ = run(v, ts)
    assert list(ev[3000:][np.isin(ev[3000:], STARTS)]) == [EV_START_FLAT]
    first_flat = int(np.flatnonzero(ev == EV_START_FLAT)[0])
    assert 3000 < first_flat < 3030 and not q[first_flat] & Quality.ANOMALY  # the bit marks sizes only
    _, ev_off, _, _ = run(v, ts, prm=shipped(flat=False))
    assert not (ev_off[3000:] != 0).any()  # without the signal nothing is seen


def test_a_series_that_often_holds_its_value_does_not_fire_on_its_ordinary_holds():
    rng = np.random.default_rng(2)
    v = np.repeat(np.round(20 + rng.normal(0, 2, 1000), 1), rng.integers(1, 25, 1000))[:12000]  # holds of 1-24 readings
    ts = 1_704_067_200_000 + np.arange(len(v), dtype=np.int64) * 60_000
    _, ev, _, _ = run(v, ts)
    assert not (ev[2000:] == EV_START_FLAT).any()
    w = v.copy()
    w[10000:10300] = w[9999]  # a hold far longer than any before
    _, ev, _, _ = run(w, ts)
    assert (ev[10000:10300] == EV_START_FLAT).sum() == 1


def test_a_hold_that_recurs_every_day_fires_once_and_a_longer_one_again():
    """A daily course that holds its value for 40 readings at the same hour every day from day 2: the first
    hold is news, the same hold again is not; a hold three times as long on day 10 is."""
    rng = np.random.default_rng(11)
    i = np.arange(288 * 12)
    v = 20 + 5 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 0.3, len(i))
    for d in range(2, 12):
        v[d * 288 + 100:d * 288 + 140] = v[d * 288 + 99]
    ts = 1_704_067_200_000 + i.astype(np.int64) * FIVE_MIN
    _, ev, _, _ = run(v, ts)
    assert [int((ev[d * 288:(d + 1) * 288] == EV_START_FLAT).sum()) for d in range(2, 12)] == [1] + [0] * 9
    w = v.copy()
    w[10 * 288 + 100:10 * 288 + 220] = w[10 * 288 + 99]
    _, ev, _, _ = run(w, ts)
    per_day = [int(np.isin(ev[d * 288:(d + 1) * 288], STARTS).sum()) for d in range(3, 12)]
    assert per_day == [0] * 7 + [1, 0]


def test_a_series_that_never_varies_never_fires():
    v = np.full(5000, 230.0)
    _, ev, _, _ = run(v, 1_704_067_200_000 + np.arange(5000, dtype=np.int64) * 1000)
    assert not ev.any()


# ---- time of day ----------------------------------------------------------------------------------


def test_clean_building_days_raise_no_time_of_day_event():
    ts, v, _, _ = building(42, "Asia/Shanghai", 3)
    _, ev, _, _ = run(v, ts, ZoneTable("Asia/Shanghai").covering(int(ts[0]), int(ts[-1])))
    assert not (ev[288 * 7:] == EV_START_TOD).any()
    assert (np.isin(ev[288 * 7:], STARTS)).sum() <= 2


def test_ventilation_running_all_night_is_found_by_the_time_of_day_baseline():
    ts, v, hour, wday = building(36, "Asia/Shanghai", 4)
    night = (np.arange(len(v)) // 288 == 30) & (hour < 6)  # a Wednesday night, 00-06: day-time load
    v[night] = 50.0 + np.random.default_rng(5).normal(0, 1.0, night.sum())
    tz = tz_table("Asia/Shanghai", int(ts[0]), int(ts[-1]))
    _, ev, _, _ = run(v, ts, tz)
    rows = np.flatnonzero(night)
    assert (ev[rows[0]:rows[0] + 36] == EV_START_TOD).sum() == 1  # within three hours, once
    _, ev_off, _, _ = run(v, ts, tz, prm=shipped(tod=False))
    assert not np.isin(ev_off[rows], STARTS).any()  # an ordinary value for the series: size alone misses it


def test_a_missing_working_day_is_found_in_the_second_week():
    """Two weeks of a building's days (from a Monday); on the second Wednesday the day-time load never comes:
    found by the time-of-day baseline as soon as its workday slots have learnt (six workdays), not weeks later."""
    ts, v, hour, _ = building(14, "UTC", 21)
    day = np.arange(len(v)) // 288
    missing = (day == 9) & (hour >= 8) & (hour < 18)
    v[missing] = 10.0 + np.random.default_rng(22).normal(0, 1.0, missing.sum())
    _, ev, _, _ = run(v, ts)
    starts = np.flatnonzero(np.isin(ev, STARTS))
    assert len(starts) == 1 and ev[starts[0]] == EV_START_TOD and missing[starts[0]]
    assert hour[starts[0]] == 8  # within the first hour
    _, ev_off, _, _ = run(v, ts, prm=shipped(tod=False))
    assert not np.isin(ev_off, STARTS).any()  # every value is an ordinary one for the series


def test_time_of_day_baseline_follows_local_time_across_dst():
    """A Berlin building's schedule in local time: read with Berlin's offsets (DST on 31 March and 27 October)
    its days stay clean after the change; read as UTC, the shifted hour looks wrong."""
    start = dt.datetime(2024, 2, 12)
    ts, v, _, _ = building(63, "Europe/Berlin", 6, start)  # 12 February - 15 April
    berlin = tz_table("Europe/Berlin", int(ts[0]), int(ts[-1]))
    assert len(berlin[0]) == 1
    after = int(np.searchsorted(ts, berlin[0][0]))
    _, ev, _, _ = run(v, ts, berlin)
    assert not (ev[after:] == EV_START_TOD).any()
    _, ev_utc, _, _ = run(v, ts, kernels.detect.UTC)
    assert (ev_utc[after:] == EV_START_TOD).any()


def test_local_offset_matches_the_zone_database():
    z = ZoneInfo("America/New_York")
    lo, hi = 1_700_000_000_000, 1_760_000_000_000
    tr, off = tz_table(z, lo, hi)
    rng = np.random.default_rng(7)
    for t in rng.integers(lo, hi, 300).tolist() + [int(x) + d for x in tr for d in (-1000, 0, 1000)]:
        want = dt.datetime.fromtimestamp(t / 1000, dt.UTC).astimezone(z).utcoffset().total_seconds() * 1000
        assert py_func(detect.local_offset)(t, tr, off) == want


# ---- properties -----------------------------------------------------------------------------------


def faulty_building(zone="Europe/Berlin"):
    start = dt.datetime(2024, 2, 26)
    ts, v, hour, _ = building(56, zone, 8, start)
    day = np.array([(dt.datetime.fromtimestamp(t / 1000, ZoneInfo(zone)).date() - start.date()).days for t in ts.tolist()])
    v[(day == 45) & (hour < 6)] = 50.0  # the night of 11 April, 00-06 local, at day level; later frozen
    v[288 * 50:288 * 50 + 200] = v[288 * 50 - 1]
    return ts, v, tz_table(zone, int(ts[0]), int(ts[-1]))


def test_shape_and_time_signals_are_scale_invariant():
    ts, v, tz = faulty_building()
    a = run(v, ts, tz)
    b = run(v * 1000 + 7, ts, tz)
    assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-6)
    assert (a[1] == EV_START_TOD).any() and (a[1] == EV_START_FLAT).any()


@pytest.mark.parametrize("cut", [288 * 44, 288 * 45 + 30, 288 * 50 + 20])
def test_shape_and_time_signals_are_causal(cut):
    ts, v, tz = faulty_building()
    w = v.copy()
    w[cut:] = np.random.default_rng(cut).normal(500, 100, len(v) - cut)
    a, b = run(v, ts, tz), run(w, ts, tz)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x[:cut], y[:cut])


def test_shape_and_time_signals_jit_equals_python():
    ts, v, tz = faulty_building()
    a = run(v, ts, tz)
    b = run(v, ts, tz, fn=py_func(detect.detect_step))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert (a[1] == EV_START_TOD).any() and (a[1] == EV_START_FLAT).any()


# ---- through the processor ------------------------------------------------------------------------


def test_the_processor_reads_the_time_of_day_in_its_configured_zone_and_names_the_signal(tmp_path):
    from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
    from agent.driver import Clock
    from agent.model import Batch, MetricSpec
    from agent.processing import ProcessingConfig, Processor
    from agent.series import SeriesTable

    class Meter(DeviceConfig):
        pass

    def events(zone: str) -> list[dict]:
        cfg = AgentConfig(gateway=GatewayConfig(id="gw"),
                          devices=(Meter(name="hvac", type="meter", poll_interval=300.0, anomaly=["power"]),),
                          processing=ProcessingConfig(jit="off", timezone=zone))
        table = SeriesTable()
        table.add_device("hvac", [MetricSpec("power", "kW")])
        proc = Processor(cfg, table, state_dir=tmp_path / zone.replace("/", "-"), clock=Clock())
        out = []
        for i in range(0, len(v), 288):  # a day per batch
            b = Batch.from_columns(np.zeros(len(v[i:i + 288]), np.int32), ts[i:i + 288], v[i:i + 288].copy())
            out += proc.process(b, int(ts[i:i + 288][-1]) + 1000).events
        return out

    ts, v, tz = faulty_building("Europe/Berlin")  # 26 February - 21 April: across the change to summer time
    v = v[:288 * 48]
    ts = ts[:288 * 48]
    berlin = [e for e in events("Europe/Berlin") if e["kind"] == "anomaly_start"]
    assert [e["metrics"][0]["signal"] for e in berlin if e["ts"] > ts[288 * 14]] == ["time_of_day"]
    night = berlin[-1]
    local = dt.datetime.fromtimestamp(night["ts"] / 1000, ZoneInfo("Europe/Berlin"))
    assert local.date() == dt.date(2024, 4, 11) and local.hour < 6 and night["metric"] == "power"
    as_utc = [e for e in events("UTC") if e["kind"] == "anomaly_start" and e["ts"] > ts[288 * 14]]
    early = [e for e in as_utc if e["ts"] < night["ts"] - 86_400_000]
    assert early and all(e["metrics"][0]["signal"] == "time_of_day" for e in early)  # read as UTC, summer time looks wrong
