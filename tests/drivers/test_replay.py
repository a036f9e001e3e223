"""Replay driver: pacing against the clock, full speed, looping, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.config import load_config_text
from agent.driver import DriverContext
from agent.errors import ConfigError
from drivers.replay import SPEC
from drivers.replay.driver import ReplayConfig

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


class FakeClock:
    def __init__(self):
        self.mono = 100.0
        self.wall = 1_700_000_000_000

    def monotonic(self):
        return self.mono

    def now_ms(self):
        return self.wall + int((self.mono - 100.0) * 1000)


def make(tmp_path: Path, rows: list[tuple[str, str]], **kw):
    f = tmp_path / "s.csv"
    f.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    cfg = ReplayConfig(name="r", type="replay", file=f, **kw)
    clock = FakeClock()
    return SPEC.factory(cfg, DriverContext(gateway="gw", state_dir=tmp_path, buses=None, clock=clock)), clock


ROWS = [(f"2026-01-01 00:00:{s:02d}", str(s * 1.5)) for s in range(0, 60, 10)]  # 6 rows, 10 s apart


async def test_real_time_pacing_releases_rows_when_due(tmp_path: Path) -> None:
    drv, clock = make(tmp_path, ROWS, speed=1.0, loop=False)
    await drv.open()
    assert (await drv.read()).value.tolist() == [0.0]
    clock.mono += 9.9
    assert len(await drv.read()) == 0
    clock.mono += 0.2
    b = await drv.read()
    assert b.value.tolist() == [15.0] and b.ts.tolist() == [clock.wall + 10_000]
    clock.mono += 100
    assert (await drv.read()).value.tolist() == [30.0, 45.0, 60.0, 75.0]
    assert len(await drv.read()) == 0  # no loop: done


async def test_speed_scales_file_time(tmp_path: Path) -> None:
    drv, clock = make(tmp_path, ROWS, speed=10.0, loop=False)
    await drv.open()
    await drv.read()
    clock.mono += 2.0  # 20 s of file time
    b = await drv.read()
    assert b.value.tolist() == [15.0, 30.0]
    assert b.ts.tolist() == [clock.wall + 1000, clock.wall + 2000]  # shifted and compressed
    assert np.all(b.quality != 0)  # compressed time is flagged estimated


async def test_full_speed_with_loop_keeps_timestamps_increasing(tmp_path: Path) -> None:
    drv, _ = make(tmp_path, ROWS, speed=0, max_rows_per_read=4, timestamps="original")
    await drv.open()
    ts = []
    for _ in range(5):
        ts.extend((await drv.read()).ts.tolist())
    assert len(ts) == 4 + 2 + 4 + 2 + 4
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))


@pytest.mark.skipif(not NAB.exists(), reason="NAB corpus not present")
async def test_plays_a_nab_file(tmp_path: Path) -> None:
    cfg = ReplayConfig(name="taxi", type="replay", file=NAB, speed=0, max_rows_per_read=100_000, loop=False,
                       timestamps="original")
    drv = SPEC.factory(cfg, DriverContext(gateway="gw", state_dir=tmp_path, buses=None))
    await drv.open()
    b = await drv.read()
    assert len(b) == 10320 and b.value[0] == 10844.0


@pytest.mark.parametrize("body, message", [
    ("time,value\n1,2\n", "no column 'timestamp'"),
    ("timestamp,value\n2026-01-01 00:00:00,abc\n", "s.csv:2: column 'value': not a number"),
    ("timestamp,value\nyesterday,1\n", "s.csv:2: column 'timestamp': not a timestamp"),
    ("timestamp,value\n", "no data rows"),
    ("timestamp,value\n2026-01-02,1\n2026-01-01,2\n", "timestamps go backwards"),
])
async def test_bad_files_give_clear_errors(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "s.csv"
    f.write_text(body)
    drv = SPEC.factory(ReplayConfig(name="r", type="replay", file=f), DriverContext("gw", tmp_path, None))
    with pytest.raises(ConfigError, match=message):
        await drv.open()


def test_config_rejects_bad_speed() -> None:
    with pytest.raises(ConfigError, match="speed"):
        load_config_text('[gateway]\nid="g"\n[[devices]]\nname="r"\ntype="replay"\nfile="x"\nspeed="fast"\n', env={})
