"""Start-up reads the installed distributions' metadata once, and plans a profile's reads once."""

from __future__ import annotations

import importlib.metadata
import sys

import agent.plugins as plugins
from agent.contract.driver import DRIVERS_GROUP
from agent.driver import DriverCatalog
from drivers.modbus_meter.planner import Item, plan


def test_entry_point_groups_share_one_scan_until_the_path_changes(monkeypatch, tmp_path) -> None:
    scans = []
    real = importlib.metadata.entry_points  # imported by agent.plugins when a group is first read
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda: scans.append(1) or real())
    plugins._installed.cache_clear()
    try:
        catalog = DriverCatalog.discover()
        assert "modbus_meter" in catalog.types()
        assert plugins.group_entry_points("edge_agent.lines")
        assert {ep.name for ep in plugins.group_entry_points(DRIVERS_GROUP)} == set(catalog.types())
        assert len(scans) == 1
        monkeypatch.syspath_prepend(str(tmp_path))  # a package installed meanwhile is seen
        assert tuple(sys.path)[0] == str(tmp_path)
        plugins.group_entry_points(DRIVERS_GROUP)
        assert len(scans) == 2
    finally:
        plugins._installed.cache_clear()


def test_identical_meters_share_a_plan_and_each_gets_its_own_list() -> None:
    items = [Item(i, 4, 2 * i, 2) for i in range(40)] + [Item(40, 4, 342, 2)]
    a = plan(items, max_registers=80, max_gap=80)
    b = plan(list(items), max_registers=80, max_gap=80)
    assert a == b and a is not b
    assert [(r.address, r.count) for r in a] == [(0, 80), (342, 2)]
    a.clear()
    assert plan(items, max_registers=80, max_gap=80) == b
