"""Physical plausibility per sensor family and counters that go backwards, as a user sees them:
quality bits on the published readings and what reaches the energy ledger. Frames go through the
real codecs (and, for the PMS5003, the real driver over a pty against the simulator)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import pytest  # noqa: E402

from agent.bus.base import BusPool  # noqa: E402
from agent.bus.kinds import LINE_KINDS  # noqa: E402
from agent.bus.serial_port import SerialLineConfig  # noqa: E402
from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig  # noqa: E402
from agent.driver import Clock, DriverContext  # noqa: E402
from agent.model import Batch, MetricKind, MetricSpec, Quality, Sample  # noqa: E402
from agent.processing import Processor  # noqa: E402
from agent.series import SeriesTable  # noqa: E402
from drivers import bme680, mhz19, pms5003, sds011  # noqa: E402
from drivers.charger_common import CHARGER_METRICS  # noqa: E402
from drivers.mhz19.codec import Mhz19Reading  # noqa: E402
from drivers.modbus_meter.codec import load_profile  # noqa: E402
from drivers.pms5003.sim import DEFAULT, Pms5003Sim  # noqa: E402

OOR, BAD = Quality.OUT_OF_RANGE, Quality.IMPLAUSIBLE
T0 = int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
PM = ("pm1_0", "pm2_5", "pm10")
COUNTS = ("gt0_3um", "gt0_5um", "gt1_0um", "gt2_5um", "gt5_0um", "gt10um")


class Dev(DeviceConfig):
    pass


def processor(tmp_path, metrics, **dev) -> Processor:
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(Dev(name="d", type="x", poll_interval=1.0, **dev),))
    table = SeriesTable()
    table.add_device("d", metrics)
    return Processor(cfg, table, state_dir=tmp_path, clock=Clock())


def published(tmp_path, metrics, samples: list[Sample], **dev) -> dict[str, int]:
    """Quality bits per metric after the processing stage, as they would be published."""
    proc = processor(tmp_path, metrics, **dev)
    batch = Batch.from_samples(samples, {m.name: i for i, m in enumerate(metrics)}, T0)
    proc.process(batch, T0)
    return {metrics[int(s)].name: int(q) for s, q in zip(batch.series, batch.quality, strict=True)}


def values(samples: list[Sample]) -> dict[str, float]:
    return {s.metric: s.value for s in samples}


# -- PMS5003 -----------------------------------------------------------------------------------

async def test_pms5003_adversarial_frame_with_a_valid_checksum_is_flagged_not_dropped(tmp_path):
    garbage = dataclasses.replace(DEFAULT, pm2_5=16_500)  # encode() gives it a valid checksum
    frame = pms5003.codec.encode(garbage)
    assert pms5003.codec.decode(frame) == garbage and pms5003.codec.scan(frame).frame == frame
    sim = await Pms5003Sim(reading=garbage, active=False).start()
    line = SerialLineConfig(type="serial", port=sim.path, baudrate=9600, reopen_min=0.05, reopen_max=0.2)
    pool = BusPool({"air": line}, LINE_KINDS)
    cfg = pms5003.SPEC.config_model(name="pm", type="pms5003", line="air", timeout=10.0)
    drv = pms5003.SPEC.factory(cfg, DriverContext("gw", tmp_path, pool))
    try:
        await drv.open()
        samples = await drv.read()
    finally:
        await pool.close()
        await sim.stop()
    assert values(samples)["pm2_5"] == 16_500  # kept, as read
    q = published(tmp_path, drv.metrics(), samples)
    assert q["pm2_5"] == OOR | BAD  # beyond the sensor's range, and PM2.5 > PM10 in the same frame
    assert q["pm1_0"] == BAD and q["pm10"] == BAD
    assert not any(q[m] for m in COUNTS) and q["pm2_5_cf1"] == 0


def test_pms5003_good_frame_carries_no_flags(tmp_path):
    samples = pms5003.driver.frame_samples(pms5003.codec.decode(pms5003.codec.encode(DEFAULT)))
    assert not any(s.quality for s in samples)
    assert not any(published(tmp_path, pms5003.driver.METRICS, samples).values())


def test_pms5003_pm1_above_pm2_5_is_implausible():
    r = pms5003.codec.decode(pms5003.codec.encode(dataclasses.replace(DEFAULT, pm1_0_cf1=18)))
    q = {s.metric: s.quality for s in pms5003.driver.frame_samples(r)}
    assert q["pm1_0_cf1"] == q["pm2_5_cf1"] == q["pm10_cf1"] == BAD
    assert not any(q[m] for m in PM + COUNTS)


def test_pms5003_particle_counts_must_not_increase_with_size():
    r = pms5003.codec.decode(pms5003.codec.encode(dataclasses.replace(DEFAULT, gt2_5um=250)))  # > gt1_0um = 200
    q = {s.metric: s.quality for s in pms5003.driver.frame_samples(r)}
    assert all(q[m] == BAD for m in COUNTS)
    assert not any(q[m] for m in PM)


def test_pms5003_mass_beyond_the_specified_maximum_is_out_of_range(tmp_path):
    r = dataclasses.replace(DEFAULT, pm1_0=1200, pm2_5=1200, pm10=1200)  # consistent, but past 1000 ug/m3
    samples = pms5003.driver.frame_samples(pms5003.codec.decode(pms5003.codec.encode(r)))
    q = published(tmp_path, pms5003.driver.METRICS, samples)
    assert all(q[m] == OOR for m in PM) and q["pm2_5_cf1"] == 0


# -- SDS011 ------------------------------------------------------------------------------------

def sds011_samples(pm2_5: float, pm10: float) -> list[Sample]:
    return sds011.driver.frame_samples(sds011.codec.decode(sds011.codec.encode_data(pm2_5, pm10, 0xA160)))


def test_sds011_pm2_5_above_pm10_is_implausible(tmp_path):
    q = published(tmp_path, sds011.driver.METRICS, sds011_samples(50.0, 20.0))
    assert q == {"pm2_5": BAD, "pm10": BAD}
    assert published(tmp_path, sds011.driver.METRICS, sds011_samples(12.3, 45.6)) == {"pm2_5": 0, "pm10": 0}


def test_sds011_beyond_999_9_is_out_of_range(tmp_path):
    samples = sds011_samples(1500.0, 6000.0)  # the wire format reaches 6553.5
    assert values(samples) == {"pm2_5": 1500.0, "pm10": 6000.0}
    assert published(tmp_path, sds011.driver.METRICS, samples) == {"pm2_5": OOR, "pm10": OOR}


# -- CO2 ---------------------------------------------------------------------------------------

def mhz19_co2(ppm: int) -> list[Sample]:
    r = mhz19.codec.decode_reading(mhz19.codec.encode_reading(Mhz19Reading(ppm, 24, 0)))
    return [Sample("co2", float(r.co2_ppm)), Sample("temperature", float(r.temperature_c))]


def test_mhz19_co2_beyond_the_configured_range_is_out_of_range(tmp_path):
    five = mhz19.driver.metrics_for(mhz19.driver.DetectionRange.R5000)
    assert published(tmp_path, five, mhz19_co2(6000))["co2"] == OOR
    assert published(tmp_path, five, mhz19_co2(4999))["co2"] == 0
    unset = mhz19.driver.metrics_for(None)  # range left as it is: the widest the sensor supports
    assert published(tmp_path, unset, mhz19_co2(6000))["co2"] == 0
    assert published(tmp_path, unset, mhz19_co2(20_000))["co2"] == OOR


def test_senseair_s8_profile_declares_its_co2_range(tmp_path):
    reg = next(r for r in load_profile("senseair_s8").registers if r.name == "co2")
    metrics = [reg.metric()]
    for ppm, want in ((850.0, 0), (12_000.0, OOR), (-5.0, OOR)):
        v = reg.value(reg.raw_for(ppm))  # through the register encoding
        assert published(tmp_path, metrics, [Sample("co2", v)])["co2"] == want


# -- BME680 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric,value", [("humidity", 100.5), ("humidity", -1.0), ("temperature", 90.0),
                                          ("temperature", -45.0), ("pressure", 1127.7), ("pressure", 250.0)])
def test_bme680_values_outside_the_operating_range(tmp_path, metric, value):
    good = {"temperature": 21.5, "humidity": 45.0, "pressure": 1013.0, "gas_resistance": 50_000.0}
    samples = [Sample(k, value if k == metric else v) for k, v in good.items()]
    q = published(tmp_path, bme680.driver.METRICS, samples)
    assert q == {k: (OOR if k == metric else 0) for k in good}


def test_device_checks_narrow_one_bound_and_keep_the_sensor_s_other(tmp_path):
    metrics = sds011.driver.METRICS
    q = published(tmp_path, metrics, sds011_samples(300.0, 1200.0), checks={"pm2_5": {"max": 250}, "pm10": {"min": 1}})
    assert q == {"pm2_5": OOR, "pm10": OOR}  # 300 > the configured 250; 1200 > the sensor's 999.9


# -- energy counters that go backwards ------------------------------------------------------

METER = [MetricSpec("energy", "kWh", MetricKind.COUNTER)]


def feed_meter(tmp_path, readings: list[float]) -> tuple[Processor, list[int]]:
    proc = processor(tmp_path, METER, publish="both")  # its window aggregates are examined too
    flags = []
    for k, v in enumerate(readings):
        b = Batch.from_columns([0], [T0 + k * 1000], [v])
        proc.process(b, T0 + k * 1000)
        flags.append(int(b.quality[0]))
    return proc, flags


def test_energy_counter_glitch_to_zero_books_no_energy_and_no_reset(tmp_path):
    proc, flags = feed_meter(tmp_path, [50_000.0, 50_000.1, 0.0, 50_000.2, 50_000.3])
    assert flags == [0, 0, BAD, 0, 0]
    s = proc.summary()
    assert s["energy"]["d"]["today"]["kwh"] == pytest.approx(0.3)  # not 50,000 kWh, not negative
    assert s["counter_resets"] == 0
    (_, body), = proc.flush(T0 + 62_000).aggregates
    agg = body["aggregates"][0]
    assert agg["delta"] == pytest.approx(0.3) and agg["min"] == 50_000.0 and agg["rejected"] == 1


def test_energy_meter_swap_is_a_new_baseline_after_three_reads(tmp_path):
    proc, flags = feed_meter(tmp_path, [50_000.0, 50_000.1, 2.0, 2.1, 2.2, 2.3, 2.4])
    assert flags == [0, 0, BAD, BAD, BAD, 0, 0]
    s = proc.summary()
    assert s["energy"]["d"]["today"]["kwh"] == pytest.approx(0.3)
    assert s["counter_resets"] == 1


def test_charger_session_energy_restarting_is_not_a_glitch(tmp_path):
    proc = processor(tmp_path, list(CHARGER_METRICS))
    sid = [m.name for m in CHARGER_METRICS].index("session_energy")
    flags = []
    for k, v in enumerate([0.0, 5.5, 11.0, 0.0, 0.4]):  # a session ends, the next one starts at 0
        b = Batch.from_columns([sid], [T0 + k * 1000], [v])
        proc.process(b, T0 + k * 1000)
        flags.append(int(b.quality[0]))
    assert flags == [0] * 5 and proc.summary()["counter_resets"] == 1
