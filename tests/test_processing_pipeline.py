"""Processor as the pipeline uses it: annotated batches, aggregates, energy/cost/carbon, events."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-test-numba"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from agent.config.loader import load_config_text  # noqa: E402
from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig  # noqa: E402
from agent.driver import Clock  # noqa: E402
from agent.errors import ConfigError  # noqa: E402
from agent.model import Batch, MetricKind, MetricSpec, Quality  # noqa: E402
from agent.processing import ProcessingConfig, Processor  # noqa: E402
from agent.series import SeriesTable  # noqa: E402

SH = dt.timezone(dt.timedelta(hours=8))
T0 = int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=SH).timestamp() * 1000)  # Monday 09:00 Shanghai: peak


class Meter(DeviceConfig):
    pass


def make(tmp_path, jit="auto", **dev):
    dev.setdefault("publish", "both")  # window aggregates are computed only for devices that publish them
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), devices=(Meter(name="m1", type="meter", poll_interval=1.0, **dev),),
                      processing=ProcessingConfig(jit=jit))
    table = SeriesTable()
    table.add_device("m1", [MetricSpec("voltage", "V"), MetricSpec("energy", "kWh", MetricKind.COUNTER), MetricSpec("power", "W")])
    return Processor(cfg, table, state_dir=tmp_path, clock=Clock()), table


def seconds(n, start=T0, every=1000):
    """Rows for the three series each second: 230 V, energy +0.001 kWh/s, 3600 W."""
    ts = np.repeat(start + np.arange(n) * every, 3)
    s = np.tile(np.array([0, 1, 2], np.int32), n)
    v = np.empty(3 * n)
    v[0::3] = 230.0
    v[1::3] = 1000.0 + np.arange(n) * 0.001
    v[2::3] = 3600.0
    return Batch.from_columns(s, ts, v)


def test_windows_close_on_flush_and_batch_is_kept(tmp_path):
    proc, _ = make(tmp_path, checks={"voltage": {"min": 0, "max": 300}})
    b = seconds(30)
    b.value[0] = 500.0
    r = proc.process(b, T0 + 30_000)
    assert len(b) == 90 and b.quality[0] == Quality.OUT_OF_RANGE and not b.quality[1:].any()
    assert r.aggregates == []
    assert proc.flush(T0 + 60_000).aggregates == []  # grace period not over
    (dev, body), = proc.flush(T0 + 62_000).aggregates
    assert dev == "m1" and body["window"] == "1m" and body["start"] == T0 and body["end"] == T0 + 60_000
    agg = {a["metric"]: a for a in body["aggregates"]}
    v = agg["voltage"]
    assert v["count"] == 29 and v["rejected"] == 1 and v["mean"] == 230.0 and v["gaps"] == 0
    assert agg["energy"]["delta"] == pytest.approx(0.029)
    assert json.dumps(body)  # ready to publish


def test_energy_cost_and_carbon_per_hour(tmp_path):
    proc, _ = make(tmp_path)
    for k in range(60):  # one hour, one reading a minute: 0.06 kWh per minute
        b = seconds(1, start=T0 + k * 60_000)
        b.value[1] = 1000.0 + 0.06 * k
        proc.process(b, T0 + k * 60_000)
    b = seconds(1, start=T0 + 3_600_000)
    b.value[1] = 1000.0 + 0.06 * 60
    proc.process(b, T0 + 3_600_000)
    s = proc.summary()["energy"]["m1"]
    assert s["method"] == "counter" and s["today"]["kwh"] == pytest.approx(3.6)
    (dev, body), = proc.flush(T0 + 3_600_000 + 5_000).energy
    # readings a minute apart from a device polled each second: each step is spread over its minute
    # (the last one, 09:59-10:00, belongs to 09:00-10:00 too) and counted as estimated
    assert body["kwh"] == pytest.approx(3.6) and body["estimated_kwh"] == pytest.approx(3.6)
    assert body["cost"] == pytest.approx(3.6 * 1.512, abs=1e-4) and body["by_period"] == {"peak": pytest.approx(3.6)}
    assert body["kgco2e"] == pytest.approx(3.6 * 0.5306, rel=1e-6)  # the default: national 2023


def test_power_integration_when_configured(tmp_path):
    proc, _ = make(tmp_path, energy={"metric": "power"})
    proc.process(seconds(61), T0 + 61_000)
    assert proc.summary()["energy"]["m1"]["today"]["kwh"] == pytest.approx(3.6 * 60 / 3600)


def test_spike_raises_one_anomaly_event(tmp_path):
    proc, _ = make(tmp_path)
    rng = np.random.default_rng(3)
    b = seconds(400)
    b.value[0::3] = 230 + rng.normal(0, 0.5, 400)
    b.value[3 * 300] = 260.0
    r = proc.process(b, T0 + 400_000)
    starts = [e for e in r.events if e["kind"] == "anomaly_start"]
    assert len(starts) == 1 and starts[0]["metric"] == "voltage" and starts[0]["value"] == 260.0
    assert starts[0]["ts"] == T0 + 300_000 and b.quality[3 * 300] & Quality.ANOMALY
    assert any(e["kind"] == "anomaly_end" for e in r.events)


def test_unknown_metric_in_checks_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"devices\.m1\.checks\.volts"):
        make(tmp_path, checks={"volts": {"max": 1}})


def test_processing_section_is_validated():
    with pytest.raises(ConfigError, match="timezone"):
        load_config_text('[gateway]\nid = "gw"\n[processing]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="windows"):
        load_config_text('[gateway]\nid = "gw"\n[processing]\nwindows = ["7m"]\n')
    cfg = load_config_text('[gateway]\nid = "gw"\n[processing]\nwindows = ["10s", "1h"]\nemission_factor = 0.6\n')
    assert cfg.processing.emission_factor == 0.6


NO_AOT = "import agent.processing.aot as aot; aot.load = lambda d: None; aot.build_in_subprocess = lambda d: 'off'"

SCRIPT = r"""
import json, sys, numpy as np
sys.path.insert(0, {tests!r})
from pathlib import Path
import test_processing_pipeline as t
{pre}
proc, _ = t.make(Path({state!r}), jit={jit!r}, checks={{"voltage": {{"max": 240, "stuck_samples": 5}}}})
proc.prepare()
rng = np.random.default_rng(7)
out = []
for k in range(5):
    b = t.seconds(100, start=t.T0 + k * 100_000)
    b.value[0::3] = 230 + rng.normal(0, 5, 100)
    b.value[1::3][rng.integers(0, 100)] = np.nan
    b.value[0::3][50:60] = 231.0
    r = proc.process(b, t.T0 + (k + 1) * 100_000)
    out.append([r.aggregates, r.events, b.quality.tolist()])
r = proc.flush(t.T0 + 10_000_000)
out.append([r.aggregates, r.energy, proc.summary()["energy"]])
print(json.dumps([proc.K.kind, out]))
"""


@pytest.mark.parametrize(("compiled", "python"), [
    ("aot", {"jit": "off"}),
    ("jit", {"jit": "off"}),
    ("jit", {"jit": "on", "NUMBA_DISABLE_JIT": "1"}),
])
def test_compiled_and_python_kernels_give_identical_results(tmp_path, warmed_kernel_cache, compiled, python):
    runs = []
    # 'auto' loads an ahead-of-time build when there is one (a copy of the session's); 'on' is numba's JIT
    if compiled == "aot":
        compiled_run = {"jit": "auto", "NUMBA_CACHE_DIR": str(warmed_kernel_cache(tmp_path / "cache"))}
    else:
        compiled_run = {"jit": "on", "pre": NO_AOT}
    for name, how in (("compiled", compiled_run), ("python", python)):
        env = {**os.environ, "NUMBA_DISABLE_JIT": how.get("NUMBA_DISABLE_JIT", "0")}
        if how.get("NUMBA_CACHE_DIR"):
            env["NUMBA_CACHE_DIR"] = how["NUMBA_CACHE_DIR"]
        code = SCRIPT.format(tests=str(Path(__file__).parent), state=str(tmp_path / name), jit=how["jit"],
                             pre=how.get("pre", ""))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stderr[-2000:]
        runs.append(json.loads(p.stdout))
    (kind, results0), (python_kind, results1) = runs
    assert (kind, python_kind) == (compiled, "python")
    assert results0 == results1
    results = [results0]
    assert any(q & Quality.STUCK for q in results[0][0][2]) and results[0][-1][0]


def test_stale_gap_marker_is_published_as_stale_only(tmp_path):
    """docs/payloads.md: a stale reading is `"value": null, "q": 16`, not out_of_range as well."""
    proc, _ = make(tmp_path, checks={"voltage": {"min": 0, "max": 300}})
    marker = Batch(np.arange(3, dtype=np.int32), np.full(3, T0, np.int64), np.full(3, np.nan),
                   np.full(3, int(Quality.STALE), np.uint32))  # what the scheduler emits for a stale device
    proc.process(marker, T0)
    assert marker.quality.tolist() == [16, 16, 16]
    nan_reading = Batch.from_columns(np.array([0], np.int32), np.array([T0 + 1000], np.int64), np.array([np.nan]))
    proc.process(nan_reading, T0 + 1000)
    assert nan_reading.quality.tolist() == [int(Quality.OUT_OF_RANGE)]  # a device that answers NaN is still out of range


def test_auto_keeps_numba_out_of_memory_at_low_rates(tmp_path):
    """numba and LLVM cost ~130 MB: a gateway processing a few readings per second never loads them."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from pathlib import Path\nimport test_processing_pipeline as t\n"
            f"proc, _ = t.make(Path({str(tmp_path)!r}))\nproc.prepare()\n"
            "proc.process(t.seconds(10), t.T0 + 10_000)\nproc.flush(t.T0 + 100_000)\n"
            "print('numba' in sys.modules, 'llvmlite' in sys.modules, proc.K.kind)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    numba, llvm, kind = p.stdout.split()
    assert (numba, llvm) == ("False", "False") and kind in ("python", "aot")


def test_auto_compiles_the_kernels_when_processing_gets_busy(tmp_path, monkeypatch):
    import agent.processing.processor as processor

    monkeypatch.setattr(processor, "AUTO_JIT_WINDOW_S", 0.0)
    monkeypatch.setattr(processor, "AUTO_JIT_SHARE", 0.0)  # any work counts as busy
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))  # no ahead-of-time build yet
    proc, _ = make(tmp_path, checks={"voltage": {"max": 240, "stuck_samples": 5}})
    assert not proc.compiled
    first = seconds(100)
    proc.process(first, T0 + 100_000)
    proc._compiling.join(600)
    assert proc.compiled and proc.K.kind == "aot"  # built in a separate process: numba stays out of this one
    later = seconds(100, start=T0 + 100_000)
    later.value[0::3] = 250.0  # out of range, as before the switch: state carried over
    proc.process(later, T0 + 200_000)
    assert all(q & Quality.OUT_OF_RANGE for q in later.quality[0::3])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux-only")
def test_compiled_kernels_run_without_llvm_resident(tmp_path):
    """With numba's JIT, once the kernels are compiled or loaded, LLVM's ~68 MB of code is paged out and
    stays out while the compiled kernels run. (Counted: the pages only this process maps; pages that
    other processes on the machine map too cannot be paged out.)"""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"from pathlib import Path\nimport test_processing_pipeline as t\n{NO_AOT}\n"
            f"proc, _ = t.make(Path({str(tmp_path)!r}), jit='on')\nproc.prepare()\n"
            "for k in range(200):\n"
            "    proc.process(t.seconds(10, start=t.T0 + k * 10_000), t.T0 + (k + 1) * 10_000)\n"
            "proc.flush(t.T0 + 10_000_000)\n"
            "rss, name = 0, ''\n"
            "for line in open('/proc/self/smaps'):\n"
            "    f = line.split()\n"
            "    if '-' in f[0] and len(f) >= 5:\n"
            "        name = f[5] if len(f) > 5 else ''\n"
            "    elif f[0] in ('Private_Clean:', 'Private_Dirty:') and 'libllvmlite' in name:\n"
            "        rss += int(f[1])\n"
            "print(proc.summary()['jit'], rss // 1024)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    compiled, llvm_mib = p.stdout.split()
    assert compiled == "True" and int(llvm_mib) < 16, p.stdout


def test_ahead_of_time_kernels_run_without_numba_in_memory(tmp_path, warmed_kernel_cache):
    """After `edge-agent warmup` has built them, the compiled kernels load without numba or LLVM."""
    cache = warmed_kernel_cache(tmp_path / "cache")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from pathlib import Path\nimport test_processing_pipeline as t\n"
            f"proc, _ = t.make(Path({str(tmp_path)!r}))\nproc.prepare()\n"
            "proc.process(t.seconds(10), t.T0 + 10_000)\n"
            "print(proc.K.kind, proc.compiled, 'numba' in sys.modules, 'llvmlite' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["aot", "True", "False", "False"]


def test_jit_on_uses_numbas_jit_even_with_an_ahead_of_time_build(tmp_path, warmed_kernel_cache):
    """``jit = "on"`` is numba's JIT (for a gateway without a C compiler, or to compare): a build made
    by `edge-agent warmup` beside it is not loaded."""
    cache = warmed_kernel_cache(tmp_path / "cache")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from pathlib import Path\nimport agent.processing.aot as aot\nimport test_processing_pipeline as t\n"
            "import os\nassert aot.load(Path(os.environ['NUMBA_CACHE_DIR'])) is not None  # the build is there\n"
            f"proc, _ = t.make(Path({str(tmp_path)!r}), jit='on')\nproc.prepare()\n"
            "proc.process(t.seconds(10), t.T0 + 10_000)\n"
            "print(proc.K.kind, proc.compiled, 'numba' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["jit", "True", "True"]
