"""The series table's cheap views agree with the Series it builds: ids, devices, metrics and units."""

from __future__ import annotations

import numpy as np

from agent.model import MetricSpec
from agent.series import SeriesTable


def table() -> SeriesTable:
    t = SeriesTable()
    meter = [MetricSpec("v", "V"), MetricSpec("p", "W"), MetricSpec("e", "kWh", kind="counter")]
    t.add_device("m1", meter)
    t.add_device("empty", [])  # a device without metrics shares its base with the next
    t.add_device("m2", list(meter))  # equal specs: shared with m1
    t.add_device("pm", [MetricSpec("pm2_5", "ug/m3")])
    return t


def test_labels_and_label_name_every_series_as_its_series_does() -> None:
    t = table()
    built = [(s.id, s.device, s.metric, s.unit) for s in t]
    assert [(sid, d, m.name, m.unit) for sid, d, m in t.labels()] == built
    assert [(sid, *((d := t.label(sid))[0], d[1].name, d[1].unit)) for sid in range(len(t))] == built
    assert t.label(np.int64(3))[0] == "m2" and t[np.int64(3)].id == 3
    assert [d for _, d, _ in t.labels()] == ["m1"] * 3 + ["m2"] * 3 + ["pm"]
