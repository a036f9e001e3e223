"""Time-of-use tariff lookup in local time, holidays, and config validation."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

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
