"""An upgrade leaves the old kernel builds behind in the state directory; a start deletes those no start
has used for a week, and never the build this version runs."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
from agent.driver import Clock
from agent.processing import ProcessingConfig, Processor, aot, kernels
from agent.processing.jit import sources_key
from agent.series import SeriesTable

DAY = 86_400


def aged(d: Path, days: float, now: float) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "build.so").write_bytes(b"x")
    os.utime(d, (now - days * DAY, now - days * DAY))
    return d


def test_prune_deletes_only_other_builds_unused_for_a_week(tmp_path: Path) -> None:
    now = time.time()
    current = {f"aot-{aot.stamp()}", f"src-{sources_key(Path(kernels.__file__).parent)}"}
    for name in current:
        aged(tmp_path / name, 60, now)  # the running version's builds stay, however old
    aged(tmp_path / "aot-0123456789abcdef", 8, now)
    aged(tmp_path / "src-0123456789abcdef", 7.1, now)
    aged(tmp_path / "aot-fedcba9876543210", 6, now)  # another version used this week (a rollback)
    aged(tmp_path / "unrelated", 90, now)  # not ours
    (tmp_path / "aot-file").write_bytes(b"")  # not a build directory
    os.utime(tmp_path / "aot-file", (now - 90 * DAY, now - 90 * DAY))

    assert aot.prune(tmp_path, now=now) == ["aot-0123456789abcdef", "src-0123456789abcdef"]
    left = {p.name for p in tmp_path.iterdir()}
    assert left == current | {"aot-fedcba9876543210", "unrelated", "aot-file"}
    assert aot.prune(tmp_path, now=now + 2 * DAY) == ["aot-fedcba9876543210"]
    assert aot.prune(tmp_path / "missing", now=now) == [] and aot.prune(None) == []


def test_a_loaded_build_is_marked_used_at_most_once_a_day(tmp_path: Path, warmed_kernel_cache) -> None:
    pytest.importorskip("numba")
    cache = warmed_kernel_cache(tmp_path / "numba-cache")
    build = aot.build_dir(cache)
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(build, ns=(hour_ago, hour_ago))
    assert aot.load(cache) is not None
    assert build.stat().st_mtime_ns == hour_ago  # used within the day: nothing written
    os.utime(build, (0, 0))
    assert aot.load(cache) is not None
    assert build.stat().st_mtime > time.time() - DAY


class Meter(DeviceConfig):
    pass


def test_a_start_deletes_stale_builds_and_says_so(tmp_path: Path, monkeypatch, caplog) -> None:
    cache = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))  # the systemd unit sets it too
    aged(cache / "aot-0123456789abcdef", 30, time.time())
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(Meter(name="m1", type="meter", poll_interval=1.0),),
                      processing=ProcessingConfig())
    with caplog.at_level(logging.INFO, logger="edge_agent.processing"):
        Processor(cfg, SeriesTable(), state_dir=tmp_path / "state", clock=Clock())
    assert not (cache / "aot-0123456789abcdef").exists()
    assert "deleted kernel builds unused for 7 days: aot-0123456789abcdef" in caplog.text
