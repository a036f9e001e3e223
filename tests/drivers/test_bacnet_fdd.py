"""AHU fault-diagnosis kernels: numba compiles them to the same answers, missing inputs never fault,
debounce holds a fault through single samples; and bacpypes3 is imported only when a device opens."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from drivers.bacnet import fdd
from drivers.bacnet.ahu_model import AhuModel, Faults

P = fdd.FddParams()
ARGS = (P.e_temp, P.fan_heat, P.e_static, P.e_speed, P.e_signal, P.min_oa, P.e_oa, P.dt_min, P.sat_band)


def day(faults: tuple[str, ...] = (), *, oat_mean: float = 20.0, days: int = 1, seed: int = 1) -> np.ndarray:
    m = AhuModel(faults=Faults.parse(faults), oat_mean=oat_mean, seed=seed)
    return np.array([[v[r] for r in fdd.ROLES] for v in (m.step(300) for _ in range(288 * days))]).T.copy()


@pytest.mark.parametrize("oat_mean", [0.0, 8.0, 15.0, 26.0, 32.0])
def test_a_clean_ahu_raises_nothing_in_any_climate(oat_mean: float) -> None:
    x = day(oat_mean=oat_mean, days=2, seed=7)
    ts = np.arange(x.shape[1], dtype=np.int64) * 300_000
    assert fdd.Diagnoser(P).process(ts, x) == []


def test_numba_compiles_the_kernels_to_the_same_answers() -> None:
    numba = pytest.importorskip("numba")
    x = day(("sensor_bias",))
    mode = numba.njit(fdd.modes)(x, P.min_oa, P.e_signal)
    assert (mode == fdd.modes(x, P.min_oa, P.e_signal)).all()
    cond = numba.njit(fdd.conditions)(x, mode, *ARGS)
    assert (cond == fdd.conditions(x, mode, *ARGS)).all() and cond.any()
    k = fdd.N_RULES
    state = numba.njit(fdd.debounce)(cond, np.zeros(k, np.bool_), np.zeros(k, np.int64), 5, 5)
    assert (state == fdd.debounce(cond, np.zeros(k, np.bool_), np.zeros(k, np.int64), 5, 5)).all()


def test_missing_inputs_never_fault() -> None:
    x = day(("stuck_damper", "leaking_valve", "sensor_bias"))
    x[fdd.R["mat"]] = np.nan
    x[fdd.R["sat"]] = np.nan
    cond = fdd.conditions(x, fdd.modes(x, P.min_oa, P.e_signal), *ARGS)
    needs = [i for i, (_, roles, _) in enumerate(fdd.RULES.values()) if {"mat", "sat"} & set(roles)]
    assert not cond[needs].any()
    empty = np.empty((len(fdd.ROLES), 0))
    assert fdd.Diagnoser(P).process(np.empty(0, np.int64), empty) == []


def test_debounce_needs_consecutive_samples_to_start_and_to_end() -> None:
    cond = np.array([[1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1]], np.bool_)
    state = fdd.debounce(cond, np.zeros(1, np.bool_), np.zeros(1, np.int64), 3, 3)
    assert state[0].astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_an_event_carries_rule_mode_evidence_and_hours() -> None:
    x = day(("sensor_bias",))
    ts = np.arange(x.shape[1], dtype=np.int64) * 300_000
    d = fdd.Diagnoser(P)
    events = d.process(ts[:100], x[:, :100]) + d.process(ts[100:], x[:, 100:])  # two polls' worth
    start = next(e for e in events if e.rule == "fc2" and e.state == "start")
    assert start.mode in fdd.MODE_NAMES and set(start.evidence) == {"mat", "rat", "oat"}
    assert start.evidence["mat"] + P.e_temp < min(start.evidence["rat"], start.evidence["oat"]) - P.e_temp
    end = next((e for e in events if e.rule == "fc2" and e.state == "end"), None)
    total = d.hours[fdd.RULE_NAMES.index("fc2")]
    assert total > 1.0 and (end is None or 0 < end.hours <= total + 1e-9)


def test_bacpypes3_is_imported_only_when_a_bacnet_device_is_opened() -> None:
    code = ("import sys, drivers.bacnet, drivers.bacnet.sim, drivers.bacnet.discover\n"
            "from agent.simkit.conformance import build_driver, SimDevice\n"
            "d, _ = build_driver(drivers.bacnet.SPEC, SimDevice(device={'type': 'bacnet', 'address': '10.0.0.9', "
            "'device_instance': 1, 'objects': {'t': {'object': 'ai,1'}}}, lines={}), __import__('pathlib').Path('.'))\n"
            "d.metrics(); d.config.points()\n"
            "print(sorted(m for m in sys.modules if m.startswith('bacpypes3')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_heating_mode_rules_on_a_synthetic_sample() -> None:
    """Heating valve at 40 %, damper at minimum: supply 2 K below mixed air is fc5; an outdoor-air
    fraction of 60 % (from the temperatures) against a damper at 20 % is fc6."""
    col = {"oat": 0.0, "rat": 20.0, "mat": 8.0, "sat": 6.0, "sat_sp": 6.0, "damper": 20.0, "cooling_valve": 0.0,
           "heating_valve": 40.0, "fan_speed": 70.0, "duct_static": 250.0, "duct_static_sp": 250.0}
    x = np.array([[col[r]] for r in fdd.ROLES], np.float64)
    mode = fdd.modes(x, P.min_oa, P.e_signal)
    assert fdd.MODE_NAMES[mode[0]] == "heating"
    cond = fdd.conditions(x, mode, *ARGS)
    fired = {r for r, c in zip(fdd.RULE_NAMES, cond[:, 0], strict=True) if c}
    assert fired == {"fc5", "fc6"}
