"""Time-of-use tariff lookup in local time, holidays, and config validation."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from agent.processing.carbon import CarbonFactors
from agent.processing.config import TariffConfig
from agent.processing.tariff import Tariff


def ms(tz, *a):
    return int(dt.datetime(*a, tzinfo=tz).timestamp() * 1000)


def test_default_shanghai_periods_and_prices():
    t = Tariff()
    expect = {0: "valley", 5: "valley", 6: "flat", 8: "peak", 10: "peak", 11: "flat", 18: "peak", 21: "flat", 22: "valley"}
    for hour, period in expect.items():
        ts = ms(t.tz, 2024, 5, 6, hour, 0)
        assert t.period_at(ts) == period, hour
    assert t.price_at(ms(t.tz, 2024, 5, 6, 9, 30)) == 1.512
    assert t.price_at(ms(t.tz, 2024, 5, 6, 23, 59)) == 0.87
    # 09:30 in Shanghai is 01:30 UTC: the lookup is in local time, not UTC
    assert t.period_at(ms(dt.UTC, 2024, 5, 6, 1, 30)) == "peak"


def test_holidays_and_weekends_use_holiday_schedule():
    cfg = TariffConfig(
        holiday=({"start": "00:00", "end": "24:00", "period": "valley"},),
        weekend_is_holiday=True,
        holidays=(dt.date(2024, 10, 1),),
    )
    t = Tariff(cfg)
    assert t.period_at(ms(t.tz, 2024, 10, 1, 9, 0)) == "valley"  # National Day (Tuesday)
    assert t.period_at(ms(t.tz, 2024, 10, 5, 9, 0)) == "valley"  # Saturday
    assert t.period_at(ms(t.tz, 2024, 10, 8, 9, 0)) == "peak"  # ordinary Tuesday


def test_dst_zone():
    t = Tariff(tz="Europe/Berlin")
    # 08:30 local on both sides of the spring change (UTC+1 -> UTC+2)
    assert t.period_at(ms(dt.UTC, 2024, 3, 29, 7, 30)) == "peak"
    assert t.period_at(ms(dt.UTC, 2024, 4, 2, 6, 30)) == "peak"


def test_bad_tariffs_are_rejected_clearly():
    with pytest.raises(ValidationError, match="period 'shoulder' has no price"):
        TariffConfig(weekday=({"start": "00:00", "end": "24:00", "period": "shoulder"},))
    with pytest.raises(ValidationError, match="not a HH:MM"):
        TariffConfig(weekday=({"start": "25:00", "end": "24:00", "period": "flat"},))
    with pytest.raises(ValueError, match="leaves 06:00 without a period"):
        Tariff(TariffConfig(weekday=({"start": "00:00", "end": "06:00", "period": "flat"},)))


CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def example_tariff(name: str) -> Tariff:
    data = tomllib.loads((CONFIG_DIR / name).read_text())
    return Tariff(TariffConfig.model_validate(data["processing"]["tariff"]), tz=data["processing"]["timezone"])


def test_sichuan_example_seasons_and_critical_peak_across_month_boundaries():
    t = example_tariff("tariff-sichuan.toml")
    tz = t.tz
    # 16:00 is peak in June, critical in July and August, peak again in September
    assert t.period_at(ms(tz, 2024, 6, 30, 16, 0)) == "peak"
    assert t.period_at(ms(tz, 2024, 7, 1, 16, 0)) == "critical"
    assert t.period_at(ms(tz, 2024, 8, 31, 16, 59)) == "critical"
    assert t.period_at(ms(tz, 2024, 9, 1, 16, 0)) == "peak"
    # the month boundary is local midnight: 2024-06-30 16:30 UTC is 00:30 on 1 July in Sichuan (valley)
    assert t.period_at(ms(dt.UTC, 2024, 6, 30, 16, 30)) == "valley"
    assert t.period_at(ms(dt.UTC, 2024, 7, 1, 8, 0)) == "critical"  # 16:00 local on 1 July
    assert t.period_at(ms(dt.UTC, 2024, 6, 30, 8, 0)) == "peak"  # 16:00 local on 30 June
    # winter: 19:00-21:00 critical in December and January, peak in November and February
    assert t.period_at(ms(tz, 2024, 11, 30, 20, 0)) == "peak"
    assert t.period_at(ms(tz, 2024, 12, 1, 20, 0)) == "critical"
    assert t.period_at(ms(tz, 2025, 1, 31, 20, 0)) == "critical"
    assert t.period_at(ms(tz, 2025, 2, 1, 20, 0)) == "peak"
    assert t.price_at(ms(tz, 2024, 7, 15, 15, 30)) == pytest.approx(0.60 * 1.92)
    assert t.price_at(ms(tz, 2024, 7, 15, 3, 0)) == pytest.approx(0.60 * 0.4)


def test_shanghai_example_summer_midday_and_winter_evening():
    t = example_tariff("tariff-shanghai.toml")
    tz = t.tz
    assert t.period_at(ms(tz, 2024, 6, 10, 13, 30)) == "flat"
    assert t.period_at(ms(tz, 2024, 7, 10, 13, 30)) == "critical"
    assert t.period_at(ms(tz, 2024, 9, 10, 13, 30)) == "peak"
    assert t.period_at(ms(tz, 2024, 10, 10, 13, 30)) == "flat"
    assert t.period_at(ms(tz, 2024, 12, 31, 20, 0)) == "critical"
    assert t.period_at(ms(tz, 2025, 3, 3, 20, 0)) == "peak"
    assert t.prices_at(np.array([ms(tz, 2024, 7, 10, 13, 0), ms(tz, 2024, 7, 10, 23, 0)])).tolist() == [1.89, 0.87]


def test_seasons_in_a_dst_zone_keep_local_months():
    cfg = TariffConfig(seasons=({"name": "winter", "months": [10, 11, 12, 1, 2, 3],
                                 "weekday": [{"start": "00:00", "end": "24:00", "period": "valley"}]},))
    t = Tariff(cfg, tz="Europe/Berlin")
    # 2024-03-31 23:30 UTC is 01:30 on 1 April in Berlin (UTC+2): the default (April) schedule
    assert t.period_at(ms(dt.UTC, 2024, 3, 31, 23, 30)) == "valley"  # 01:30 is valley in the default too
    assert t.period_at(ms(dt.UTC, 2024, 3, 31, 7, 0)) == "valley"  # 09:00 on 31 March: winter season
    assert t.period_at(ms(dt.UTC, 2024, 4, 1, 7, 0)) == "peak"  # 09:00 on 1 April: default schedule


def test_season_errors_are_clear():
    seg = [{"start": "00:00", "end": "24:00", "period": "flat"}]
    with pytest.raises(ValidationError, match="month 7 is in both season 'a' and 'b'"):
        TariffConfig(seasons=({"name": "a", "months": [7], "weekday": seg}, {"name": "b", "months": [7, 8], "weekday": seg}))
    with pytest.raises(ValidationError, match="months must be 1-12"):
        TariffConfig(seasons=({"name": "a", "months": [13], "weekday": seg},))
    with pytest.raises(ValidationError, match=r"seasons\[0\].weekday\[0\]: period 'critical' has no price"):
        TariffConfig(seasons=({"name": "a", "months": [7], "weekday": [{"start": "00:00", "end": "24:00", "period": "critical"}]},))


# ------------------------------------------------------------------------------------ carbon
def test_emission_factor_table_custom_value_and_clear_errors():
    from agent.processing.config import CarbonConfig, ProcessingConfig

    assert CarbonFactors.from_config(ProcessingConfig()).value == 0.5703  # the old default stays
    pc = ProcessingConfig(carbon={"region": "east-china", "year": 2022})
    assert CarbonFactors.from_config(pc).factor_at(0) == 0.5617
    assert CarbonFactors.from_config(ProcessingConfig(carbon={})).value == 0.5366  # national 2022
    assert CarbonFactors.from_config(ProcessingConfig(carbon={"value": 0.42, "region": "nowhere"})).value == 0.42
    with pytest.raises(ValidationError, match="no emission factor for region 'south-west' in 2019"):
        CarbonConfig(region="south-west", year=2019)


def test_hourly_factors_price_carbon_by_hour_in_the_ledger(tmp_path):
    from agent.processing.config import ProcessingConfig
    from agent.processing.energy import EnergyLedger

    f = tmp_path / "factors.csv"
    f.write_text("hour,factor\n" + "".join(f"{h},{0.3 if 10 <= h < 16 else 0.7}\n" for h in range(24))
                 + "2024-05-06T12:00,0.1\n")
    pc = ProcessingConfig(carbon={"hourly_file": f})
    t = Tariff()
    ledger = EnergyLedger(["m"], ["counter"], tariff=t, emission_factor=CarbonFactors.from_config(pc))
    noon, night, other_noon = ms(t.tz, 2024, 5, 6, 12, 30), ms(t.tz, 2024, 5, 6, 2, 30), ms(t.tz, 2024, 5, 7, 12, 30)
    ledger.add(np.array([0, 0, 0]), np.array([noon, night, other_noon]), np.array([1.0, 1.0, 1.0]))
    bodies = {b["start"]: b["kgco2e"] for _, b in ledger.close(other_noon + 2 * 3_600_000)}
    assert sorted(bodies.values()) == [0.1, 0.3, 0.7]  # exact hour, daily profile at noon, profile at night
    assert ledger.summary(other_noon)["m"]["today"]["kgco2e"] == 0.3  # the day total uses the hourly factors too


def test_bad_hourly_factor_files_are_named(tmp_path):
    from agent.processing.config import CarbonConfig

    f = tmp_path / "f.csv"
    f.write_text("0,0.5\n1,abc\n")
    with pytest.raises(ValidationError, match=r"f.csv:2: could not convert"):
        CarbonConfig(hourly_file=f)
    f.write_text("0,0.5\n")
    with pytest.raises(ValidationError, match=r"misses hours \[1, 2"):
        CarbonConfig(hourly_file=f)
    with pytest.raises(ValidationError, match="does not exist"):
        CarbonConfig(hourly_file=tmp_path / "nope.csv")
