"""What the running agent keeps in memory for the whole run (docs/processing.md, "Start-up, memory and
the kernel cache"): one copy of a name however many devices repeat it, and a bounded outbox page cache."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config_text
from agent.store import Outbox

METRICS = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "power_total", "energy_import"]


def test_identical_devices_share_one_copy_of_each_metric_name() -> None:
    # 100 meters x 60 names kept 6000 separate strings (≈ 0.4 MB) from the TOML parse for the whole run
    names = ", ".join(f'"{m}"' for m in METRICS)
    devices = "".join(f'[[devices]]\nname = "meter{u}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {u}\n'
                      f'line = "meters"\nmetrics = [{names}]\n' for u in range(1, 4))
    cfg = load_config_text('[gateway]\nid = "gw"\n[mqtt]\nhost = "127.0.0.1"\n'
                           '[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = 1502\n' + devices)
    kept = [d.metrics for d in cfg.devices]
    assert [list(m) for m in kept] == [METRICS] * 3
    for i in range(len(METRICS)):
        assert kept[0][i] is kept[1][i] is kept[2][i]


def test_the_outbox_page_cache_is_bounded(tmp_path: Path) -> None:
    # SQLite's default cache (2 MB) filled within seconds at a high poll rate and stayed resident
    with Outbox(tmp_path / "outbox.db", max_bytes=64 << 20, gateway="gw") as ob:
        assert ob.db.execute("PRAGMA cache_size").fetchone()[0] == -512  # KiB: SQLite's default is 2 MB


def test_the_heap_trimmer_gives_freed_memory_back() -> None:
    # in a fresh interpreter: 40 MB freed below a block still in use stays resident until trimmed
    import subprocess
    import sys

    import pytest

    from agent.heap import heap_trimmer

    if heap_trimmer() is None:
        pytest.skip("the C library has no malloc_trim (not glibc): the agent does not trim there")
    code = """
from agent.heap import heap_trimmer
def rss(): return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])
trim = heap_trimmer()
x = [bytes(700) + bytes([i % 256]) for i in range(60000)]
pin = bytes(700) + b'pin'
del x
before = rss()
print(trim is not None and trim(), before - rss(), len(pin))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    given, freed_kib, _ = out.split()
    assert given == "True"
    assert int(freed_kib) > 20_000


def test_detector_and_counter_state_is_kept_only_for_the_series_that_use_it(tmp_path: Path) -> None:
    # 100 meters x 60 values held 8 MB of detector state for 6000 series; the detector watches 600 of them
    import numpy as np
    import pytest

    from agent.config.schema import AgentConfig, DeviceConfig, GatewayConfig
    from agent.driver import Clock
    from agent.model import Batch, MetricKind, MetricSpec, Quality
    from agent.processing import ProcessingConfig, Processor
    from agent.series import SeriesTable

    specs = [MetricSpec("voltage", "V"), MetricSpec("energy", "kWh", MetricKind.COUNTER),
             MetricSpec("power_factor", "", anomaly=False), MetricSpec("power", "W")]
    names = ["m1", "m2", "m3"]
    cfg = AgentConfig(gateway=GatewayConfig(id="gw"), processing=ProcessingConfig(jit="off"),
                      devices=tuple(DeviceConfig(name=n, type="meter", poll_interval=1.0) for n in names))
    table = SeriesTable()
    for n in names:
        table.add_device(n, specs)
    proc = Processor(cfg, table, state_dir=tmp_path, clock=Clock())
    assert proc.det.shape[0] == 2 * 3 + 1 and proc.ci.shape[0] == 3 + 1  # a row each, and row 0 for the rest

    t0, n = 1_714_957_200_000, 400  # one reading a second from each meter
    rng = np.random.default_rng(5)
    ts = np.repeat(t0 + np.arange(n) * 1000, 12)
    s = np.tile(np.arange(12, dtype=np.int32), n)
    v = np.empty((n, 12))
    for k in range(3):
        v[:, 4 * k] = 220 + 5 * k + rng.normal(0, 0.5, n)  # each meter's own voltage level
        v[:, 4 * k + 1] = 1000.0 * (k + 1) + np.arange(n) * 0.001 * (k + 1)  # energy: k+1 Wh a second
        v[:, 4 * k + 2] = 0.95
        v[:, 4 * k + 3] = 1000.0 * (k + 1) + rng.normal(0, 5, n)
    v[300, 4] = 300.0  # m2's voltage jumps once
    b = Batch.from_columns(s, ts, v.ravel())
    r = proc.process(b, t0 + n * 1000)
    starts = [e for e in r.events if e["kind"] == "anomaly_start"]
    assert [(e["device"], e["metric"], e["value"]) for e in starts] == [("m2", "voltage", 300.0)]
    assert starts[0]["context"]["baseline"] == pytest.approx(225, abs=1)  # m2's own baseline
    assert b.quality[300 * 12 + 4] & Quality.ANOMALY
    energy = proc.summary()["energy"]
    for k, name in enumerate(names):
        assert energy[name]["today"]["kwh"] == pytest.approx((n - 1) * 0.001 * (k + 1))
