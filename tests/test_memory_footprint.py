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
