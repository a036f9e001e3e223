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


def hours(t: Tariff, year: int, month: int, day: int) -> list[str]:
    """The period of each hour of a local day (at half past)."""
    return [t.period_at(ms(t.tz, year, month, day, h, 30)) for h in range(24)]


def spans(**periods: str) -> list[str]:
    """hours(...) written as runs: spans(valley="0-6", flat="6-8 15-18") -> one name per hour."""
    out = [""] * 24
    for name, runs in periods.items():
        for run in runs.split():
            a, b = (int(x) for x in run.split("-"))
            for h in (range(a, b) if a < b else [*range(a, 24), *range(0, b)]):
                out[h] = name
    assert "" not in out, out
    return out


# 川发改价格〔2025〕185号 as quoted in config/tariff-sichuan.toml
SC_SPRING = spans(valley="22-8", flat="8-10 12-17", peak="10-12 17-22")
SC_SUMMER = spans(valley="1-7", flat="7-11 18-20 23-1", peak="11-18 20-23")
SC_SUMMER_LI = spans(valley="1-7", flat="7-11 18-20 23-1", peak="11-13 14-18 20-21", critical="13-14 21-23")
SC_WINTER = spans(valley="0-8", flat="8-10 12-16 22-24", peak="10-12 16-22")


@pytest.mark.parametrize(("month", "general", "large_industry"), [
    (1, SC_WINTER, SC_WINTER), (2, SC_WINTER, SC_WINTER), (3, SC_SPRING, SC_SPRING), (6, SC_SPRING, SC_SPRING),
    (7, SC_SUMMER, SC_SUMMER_LI), (8, SC_SUMMER, SC_SUMMER_LI), (9, SC_SUMMER, SC_SUMMER),
    (10, SC_SPRING, SC_SPRING), (11, SC_SPRING, SC_SPRING), (12, SC_WINTER, SC_WINTER),
])
def test_sichuan_examples_follow_the_2025_notice_hour_by_hour(month, general, large_industry):
    assert hours(example_tariff("tariff-sichuan.toml"), 2025, month, 15) == general
    assert hours(example_tariff("tariff-sichuan-large-industry.toml"), 2025, month, 15) == large_industry


def test_sichuan_prices_keep_the_notices_ratios():
    t = example_tariff("tariff-sichuan-large-industry.toml")
    flat = t.price_at(ms(t.tz, 2025, 7, 15, 8, 0))
    assert t.price_at(ms(t.tz, 2025, 7, 15, 12, 0)) == pytest.approx(flat * 1.6)  # peak: flat +60 %
    assert t.price_at(ms(t.tz, 2025, 7, 15, 3, 0)) == pytest.approx(flat * 0.4)  # valley: flat -60 %
    assert t.price_at(ms(t.tz, 2025, 7, 15, 13, 30)) == pytest.approx(flat * 1.6 * 1.2)  # critical: peak +20 %
    assert t.price_at(ms(t.tz, 2025, 8, 31, 22, 59)) == pytest.approx(flat * 1.6 * 1.2)
    assert t.period_at(ms(t.tz, 2025, 9, 1, 22, 0)) == "peak"  # no critical peak after August
    assert "critical" not in {p for m in range(1, 13) for p in hours(example_tariff("tariff-sichuan.toml"), 2025, m, 15)}
    # the month boundary is local midnight: 2025-06-30 16:30 UTC is 00:30 on 1 July in Sichuan
    assert t.period_at(ms(dt.UTC, 2025, 6, 30, 16, 30)) == "flat"  # summer: 23:00-01:00 is flat
    assert t.period_at(ms(dt.UTC, 2025, 6, 29, 16, 30)) == "valley"  # 00:30 on 30 June: spring valley
    assert t.period_at(ms(dt.UTC, 2025, 7, 31, 15, 30)) == "flat"  # 23:30 on 31 July: summer flat


# 沪发改价管〔2022〕50号 (two-part users) as cited in config/tariff-shanghai.toml
SH_SUMMER = spans(valley="22-6", flat="6-8 15-18 21-22", peak="8-15 18-21")
SH_SUMMER_CRIT = spans(valley="22-6", flat="6-8 15-18 21-22", peak="8-12 14-15 18-21", critical="12-14")
SH_OTHER = spans(valley="22-6", flat="6-8 11-18 21-22", peak="8-11 18-21")
SH_WINTER = spans(valley="22-6", flat="6-8 11-18 21-22", peak="8-11 18-19", critical="19-21")


@pytest.mark.parametrize(("month", "expected", "peak", "valley"), [
    (1, SH_WINTER, 1.8, 0.4), (2, SH_OTHER, 1.6, 0.5), (5, SH_OTHER, 1.6, 0.5), (6, SH_OTHER, 1.6, 0.5),
    (7, SH_SUMMER_CRIT, 1.8, 0.4), (8, SH_SUMMER_CRIT, 1.8, 0.4), (9, SH_SUMMER, 1.8, 0.4),
    (10, SH_OTHER, 1.6, 0.5), (11, SH_OTHER, 1.6, 0.5), (12, SH_WINTER, 1.8, 0.4),
])
def test_shanghai_example_follows_the_notice_hours_and_seasonal_ratios(month, expected, peak, valley):
    t = example_tariff("tariff-shanghai.toml")
    assert hours(t, 2025, month, 15) == expected
    flat = t.price_at(ms(t.tz, 2025, month, 15, 6, 30))
    assert flat == pytest.approx(0.70)
    assert t.price_at(ms(t.tz, 2025, month, 15, 9, 0)) == pytest.approx(flat * peak)
    assert t.price_at(ms(t.tz, 2025, month, 15, 23, 0)) == pytest.approx(flat * valley)
    if "critical" in expected:
        hour = expected.index("critical")
        assert t.price_at(ms(t.tz, 2025, month, 15, hour, 30)) == pytest.approx(flat * peak * 1.25)


def test_season_prices_reach_the_energy_ledger():
    """The ledger bills each kWh at its month's price: the same peak hour costs more in July than in June."""
    from agent.processing.energy import EnergyLedger

    t = example_tariff("tariff-shanghai.toml")
    ledger = EnergyLedger(["m"], ["counter"], tariff=t, emission_factor=0.5)
    june, july = ms(t.tz, 2025, 6, 16, 9, 30), ms(t.tz, 2025, 7, 16, 9, 30)
    ledger.add(np.array([0, 0]), np.array([june, july]), np.array([1.0, 1.0]))
    costs = {b["start"]: b["cost"] for _, b in ledger.close(july + 2 * 3_600_000)}
    assert sorted(costs.values()) == [pytest.approx(1.12), pytest.approx(1.26)]


def test_season_prices_are_checked_against_the_seasons_periods():
    seg = [{"start": "00:00", "end": "24:00", "period": "critical"}]
    with pytest.raises(ValidationError, match=r"seasons\[0\].weekday\[0\]: period 'critical' has no price \(seasons\[0\].prices"):
        TariffConfig(seasons=({"name": "a", "months": [7], "weekday": seg, "prices": {"peak": 1.0}},))
    t = Tariff(TariffConfig(seasons=({"name": "a", "months": [7], "weekday": seg, "prices": {"critical": 2.0}},)))
    assert t.price_at(ms(t.tz, 2025, 7, 1, 12, 0)) == 2.0 and t.period_at(ms(t.tz, 2025, 7, 1, 12, 0)) == "critical"
    assert t.price_at(ms(t.tz, 2025, 6, 1, 12, 0)) == 1.162  # June: the tariff's own prices


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

    assert CarbonFactors.from_config(ProcessingConfig()).value == 0.5306  # national 2023 (MEE/NBS)
    pc = ProcessingConfig(carbon={"region": "east-china", "year": 2022})
    assert CarbonFactors.from_config(pc).factor_at(0) == 0.5617
    assert CarbonFactors.from_config(ProcessingConfig(carbon={})).value == 0.5306  # the same default
    assert CarbonFactors.from_config(ProcessingConfig(carbon={"year": 2022})).value == 0.5366
    # without a year: the region's newest
    assert CarbonFactors.from_config(ProcessingConfig(carbon={"region": "national-ets"})).value == 0.5703
    assert CarbonFactors.from_config(ProcessingConfig(carbon={"region": "south-west"})).value == 0.2472
    assert CarbonFactors.from_config(ProcessingConfig(carbon={"region": "east-china", "year": 2023})).value == 0.5500
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


def test_carbon_is_the_same_with_and_without_a_carbon_table():
    """One default: a config gives the same kgCO2e whether or not it has a [processing.carbon] table."""
    from agent.config import load_config_text
    from agent.processing.energy import EnergyLedger

    kg = []
    for extra in ("", "[processing.carbon]\n", '[processing.carbon]\nregion = "national"\n'):
        cfg = load_config_text(f'[gateway]\nid = "gw"\n{extra}')
        t = Tariff(cfg.processing.tariff, tz=cfg.processing.timezone)
        ledger = EnergyLedger(["m"], ["counter"], tariff=t, emission_factor=CarbonFactors.from_config(cfg.processing))
        at = ms(t.tz, 2025, 5, 6, 9, 30)
        ledger.add(np.array([0]), np.array([at]), np.array([10.0]))
        (_, body), = ledger.close(at + 2 * 3_600_000)
        kg.append(body["kgco2e"])
    assert kg == [pytest.approx(5.306)] * 3  # 10 kWh x 0.5306, MEE/NBS national 2023
