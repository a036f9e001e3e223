"""Replay driver: pacing against the clock, full speed, looping, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.config import load_config_text
from agent.driver import DriverContext
from agent.errors import ConfigError, DeviceError
from agent.model import Quality
from drivers.replay import SPEC
from drivers.replay.driver import ReplayConfig

# the NAB corpus sits in a "shared" directory beside the checkout (or beside its parent for a worktree)
NAB_DIR = next((p / "shared" / "data" / "nab" / "data" / "realKnownCause" for p in Path(__file__).resolve().parents[2:5]
                if (p / "shared" / "data" / "nab").is_dir()), Path("/nonexistent"))
NAB = NAB_DIR / "nyc_taxi.csv"
NAB_MACHINE = NAB_DIR / "machine_temperature_system_failure.csv"


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
])
async def test_bad_files_give_clear_errors(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "s.csv"
    f.write_text(body)
    drv = SPEC.factory(ReplayConfig(name="r", type="replay", file=f), DriverContext("gw", tmp_path, None))
    with pytest.raises(DeviceError, match=message):  # the device is down, the agent keeps running
        await drv.open()


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 8,  # random-looking binary
    __import__("random").Random(7).randbytes(4000),
    b"timestamp,value\n2026-01-01T00:00:00,1\n\x00\x00\x00,2\n",  # NUL bytes
    b"timestamp,value\n" + b"1" * 200_000 + b",2\n",  # a field past the csv module's limit
    b"timestamp,value\ninf,1\n",
])
async def test_a_file_of_garbage_gives_an_error_naming_it(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "s.csv"
    f.write_bytes(content)
    drv = SPEC.factory(ReplayConfig(name="r", type="replay", file=f), DriverContext("gw", tmp_path, None))
    with pytest.raises(DeviceError) as err:  # typed, so the device is down and the agent keeps running
        await drv.open()
    assert str(err.value).startswith(f"{f}"), str(err.value)


def test_random_bytes_replay_file_under_the_real_cli_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    f = tmp_path / "random.csv"
    f.write_bytes(__import__("random").Random(1).randbytes(3000))
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nhost = "127.0.0.1"\n'
                   f'[[devices]]\nname = "m"\ntype = "replay"\nfile = "{f}"\n')
    r = subprocess.run([sys.executable, "-m", "agent.cli.main", "run", "--once", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and f"{f}: not a UTF-8 CSV text file" in out and "Traceback" not in out, out


def test_config_rejects_bad_speed() -> None:
    with pytest.raises(ConfigError, match="speed"):
        load_config_text('[gateway]\nid="g"\n[[devices]]\nname="r"\ntype="replay"\nfile="x"\nspeed="fast"\n', env={})


async def test_a_step_back_in_time_is_flagged_not_refused(tmp_path: Path) -> None:
    rows = [("2026-01-01 02:50:00", "1"), ("2026-01-01 02:55:00", "2"), ("2026-01-01 02:00:00", "3"),
            ("2026-01-01 02:05:00", "4"), ("2026-01-01 03:00:00", "5")]
    drv, _ = make(tmp_path, rows, speed=0, loop=False, timestamps="original")
    await drv.open()
    b = await drv.read()
    assert b.value.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # every row, in file order
    flagged = [bool(q & Quality.DEVICE_FLAGGED) for q in b.quality.tolist()]
    assert flagged == [False, False, True, True, False]  # the rows earlier than a row before them


@pytest.mark.skipif(not NAB_MACHINE.exists(), reason="NAB corpus not present")
async def test_plays_the_nab_file_with_a_step_back(tmp_path: Path) -> None:
    cfg = ReplayConfig(name="m", type="replay", file=NAB_MACHINE, speed=0, max_rows_per_read=100_000, loop=False,
                       timestamps="original")
    drv = SPEC.factory(cfg, DriverContext(gateway="gw", state_dir=tmp_path, buses=None))
    await drv.open()
    b = await drv.read()
    assert len(b) == 22695
    assert int(np.count_nonzero(b.quality & Quality.DEVICE_FLAGGED)) == 11


async def test_a_long_file_is_parsed_once_and_comes_up_despite_poll_timeouts(tmp_path: Path, monkeypatch) -> None:
    import threading
    import time

    from agent.scheduler import Poller
    from drivers.replay import codec
    from drivers.replay import driver as replay_driver

    release = threading.Event()
    calls = []

    def slow_read_series(path, **kw):  # a parse that outlasts many poll timeouts
        calls.append(path)
        release.wait(30)
        return codec.read_series(path, **kw)

    monkeypatch.setattr(replay_driver, "read_series", slow_read_series)
    f = tmp_path / "s.csv"
    f.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + i},{i}\n" for i in range(1000)))
    cfg = ReplayConfig(name="r", type="replay", file=f, speed=0, timeout=0.05, loop=False, timestamps="original")
    poller = Poller(cfg, SPEC.factory(cfg, DriverContext("gw", tmp_path, None)), lambda name, batch: None)
    for _ in range(3):
        assert not await poller.poll_once()  # still parsing: the poll times out
    release.set()
    for _ in range(200):
        if await poller.poll_once():
            break
        time.sleep(0.01)
    assert poller.health.up and poller.health.readings == 1000
    assert len(calls) == 1  # retries waited for the same parse
