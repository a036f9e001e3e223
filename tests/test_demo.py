"""`edge-agent demo` as a new user runs it: without a terminal, it must tell the truth and finish."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from agent.app import Agent
from agent.config import load_config_text
from agent.demo.run import DemoResult, demo_config
from agent.demo.sims import DemoSims, start_environment, start_station

DEVICES = ["building-load", "room-temp", "main-meter", "lighting-meter", "lobby-pm", "water-meter",
           "lobby-climate", "grid", "bay1", "bay2", "bay3", "bay4"]


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory) -> dict[str, str]:
    # the demo caches compiled kernels in the user's cache directory: a private one here
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")), "PYTHONUNBUFFERED": "1"}


def run_demo(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "demo", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(200)
def test_demo_without_a_terminal_sees_every_device_and_every_seq(demo_env) -> None:
    # a short link outage included: the backlog must drain and every seq still arrive
    r = run_demo(demo_env, "--duration", "14", "--outage-at", "4", "--outage-len", "4")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "╭" not in out and "┃" not in out, "boxes printed without a terminal"
    assert len(out.splitlines()) < 25, out
    assert re.search(r"seq 1\.\.([1-9]\d*): 0 missing", out), out
    per_device = dict(re.findall(r"([\w-]+) (\d+)", out.split("readings per device:", 1)[1].splitlines()[0]))
    assert sorted(per_device) == sorted(DEVICES), out
    assert all(int(n) > 0 for n in per_device.values()), per_device
    assert "link DOWN" in out, "the outage did not happen"
    assert "Traceback" not in out + r.stderr


def test_demo_refuses_a_duration_too_short_to_show_anything(demo_env) -> None:
    r = run_demo(demo_env, "--duration", "5", timeout=60)
    assert r.returncode == 2
    assert "--duration" in r.stderr and "too short" in r.stderr and "at least 10" in r.stderr
    assert "Traceback" not in r.stderr


async def test_missing_bme680_library_is_reported_not_configured(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "adafruit_bme680", None)  # what importlib sees when it is not installed
    sims = DemoSims()
    try:
        await start_environment(sims)
    finally:
        await sims.stop()
    assert "lobby-climate" not in "".join(sims.toml)
    assert "'.[demo]'" in sims.unavailable["lobby-climate"]
    result = DemoResult(readings=10, by_device={"lobby-pm": 10}, unavailable=sims.unavailable, last_seq=3,
                        missing=0, duplicates=0, drained=True, outage="")
    assert any(line.startswith("lobby-climate unavailable: BME680 library missing") for line in result.summary())
    assert result.ok


def test_nothing_arrived_is_a_failure() -> None:
    result = DemoResult(readings=0, by_device={"grid": 0}, unavailable={}, last_seq=0, missing=0, duplicates=0,
                        drained=True, outage="")
    assert not result.ok
    assert "no readings from: grid" in result.summary()


async def test_the_demo_station_charges_at_any_hour_of_the_day(tmp_path) -> None:
    # the README's charging story must show whenever someone runs the demo, peak hours included
    sims = DemoSims()
    try:
        await start_station(sims)
        text = demo_config(tmp_path / "state", 1883, "".join(sims.toml) + sims.site_toml)
    finally:
        await sims.stop()
    agent = Agent(load_config_text(text, source="demo"))
    try:
        site = agent.site
        assert site is not None
        bays = [f"bay{i}" for i in range(1, 5)]
        sids = [agent.series.id("grid", "power_total")] + [agent.series.id(b, m) for b in bays for m in ("state", "power")]
        values = [12_000.0] + [v for _ in bays for v in (3.0, 0.0)]  # four cars plugged in, asking for current
        day = site.plan_tariff.local_day_start(1_700_000_000_000)
        periods = set()
        for h in range(24):
            ts = day + h * 3_600_000 + 1_800_000
            agent.latest.update(np.asarray(sids, np.int32), np.full(len(sids), ts, np.int64), np.asarray(values),
                                np.zeros(len(sids), np.uint32))
            alloc, info = site.targets(ts)
            periods.add(info["period"])
            assert max(alloc.values()) >= 6, f"no car charges at {h}:30 ({info['period']} hours): {alloc}"
        assert "peak" in periods
    finally:
        agent.commands.close()
        agent.outbox.close()
