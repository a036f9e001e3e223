"""What a meter's rating says about its metrics: how fast its counters can rise, which change matters.

From the profile's ``max_current``, ``voltage`` and ``phases``: an energy register cannot rise faster
than the rated power (per phase for ``_l1``..``_l3`` registers), and a change of a power, current or
voltage reading smaller than ``SIGNIFICANT`` of its rating (or nominal value), or of a power or
current reading smaller than ``SIGNIFICANT_REL`` of its present level, is ordinary load variation,
never an anomaly. The profile's ``anomaly`` list names the metrics that carry information
of their own; derived and max-hold registers are left to the detector only on request.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from agent.contract import MetricKind, MetricSpec

if TYPE_CHECKING:
    from .codec import ProfileInfo

SIGNIFICANT = 0.02  # of the rating (power, current) or of the nominal value (voltage)
SIGNIFICANT_REL = 0.05  # of the present level of power and current: smaller changes are ordinary load variation
FREQUENCY_SIGNIFICANT = 0.1  # Hz; EN 50160 allows +-0.5 Hz
ENERGY_UNITS = {"wh": 1.0, "kwh": 1e-3, "mwh": 1e-6, "varh": 1.0, "kvarh": 1e-3, "vah": 1.0, "kvah": 1e-3}
POWER_UNITS = {"w": 1.0, "kw": 1e-3, "var": 1.0, "kvar": 1e-3, "va": 1.0, "kva": 1e-3}
PHASE_TAGS = ("_l1", "_l2", "_l3")


def metric_facts(spec: MetricSpec, info: ProfileInfo | None) -> MetricSpec:
    """``spec`` with max_per_hour, significant and anomaly filled in from the profile (unchanged without one)."""
    if info is None:
        return spec
    unit = spec.unit.lower()
    per_phase = spec.name.endswith(PHASE_TAGS) and info.phases > 1
    rated_w = info.max_current * info.voltage * (1 if per_phase else info.phases) if info.max_current else None
    update: dict = {"anomaly": info.anomaly is None or spec.name in info.anomaly}
    if spec.kind == MetricKind.COUNTER:
        if rated_w is not None and unit in ENERGY_UNITS:
            update["max_per_hour"] = rated_w * ENERGY_UNITS[unit]
    elif unit in POWER_UNITS or unit == "a":
        update["significant_rel"] = SIGNIFICANT_REL
        if unit == "a" and info.max_current is not None:
            update["significant"] = SIGNIFICANT * info.max_current
        elif rated_w is not None and unit != "a":
            update["significant"] = SIGNIFICANT * rated_w * POWER_UNITS[unit]
    elif unit == "v":
        update["significant"] = SIGNIFICANT * info.voltage
    elif unit == "hz":
        update["significant"] = FREQUENCY_SIGNIFICANT
    return dataclasses.replace(spec, **update)
