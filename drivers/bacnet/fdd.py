"""Air-handling-unit fault diagnosis: operating mode from the control signals, then that mode's rules.

The kernels are plain functions over numpy arrays (loops and scalars only, numba-compatible like the
agent's processing kernels): :func:`modes` classifies each sample into the ASHRAE Guideline 36
operating states (NIST APAR's modes), :func:`conditions` evaluates every rule on every sample (a rule
outside its modes is False), :func:`debounce` turns conditions into faults that start after
``on_count`` consecutive samples and end after ``off_count``. :class:`Diagnoser` keeps that state
between polls and reports fault events with the rule, the evidence and the hours in fault.
docs/fault-diagnosis.md lists the rules and their sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agent.contract.lazy import lazy_exports

if TYPE_CHECKING:
    from .config import FddParams

ROLES = ("oat", "rat", "mat", "sat", "sat_sp", "damper", "cooling_valve", "heating_valve", "fan_speed",
         "duct_static", "duct_static_sp")
R = {r: i for i, r in enumerate(ROLES)}
I_DAMPER, I_COOL, I_HEAT, I_FAN = R["damper"], R["cooling_valve"], R["heating_valve"], R["fan_speed"]
MODE_NAMES = ("off", "heating", "economizer", "economizer_mechanical", "mechanical_min_oa", "unknown")
OFF, HEATING, ECON, ECON_MECH, MECH, UNKNOWN = range(6)
# rule -> (modes it is evaluated in, roles it needs, what it says)
RULES: dict[str, tuple[tuple[int, ...], tuple[str, ...], str]] = {
    "fc1": ((HEATING, ECON, ECON_MECH, MECH, UNKNOWN), ("duct_static", "duct_static_sp", "fan_speed"),
            "duct static pressure below set-point with the supply fan at full speed"),
    "fc2": ((HEATING, ECON, ECON_MECH, MECH), ("mat", "rat", "oat"), "mixed air colder than both return and outdoor air"),
    "fc3": ((HEATING, ECON, ECON_MECH, MECH), ("mat", "rat", "oat"), "mixed air warmer than both return and outdoor air"),
    "fc5": ((HEATING,), ("sat", "mat"), "heating: supply air colder than mixed air plus fan heat"),
    "fc6": ((HEATING, MECH), ("mat", "rat", "oat", "damper"),
            "minimum outdoor air: outdoor-air fraction (from temperatures) differs from the damper's minimum"),
    "fc8": ((ECON,), ("sat", "mat"), "economizer only: supply air differs from mixed air plus fan heat (coil not idle)"),
    "fc10": ((ECON_MECH,), ("mat", "oat"), "100 % outdoor air: mixed air differs from outdoor air"),
    "fc12": ((ECON_MECH, MECH), ("sat", "mat"), "mechanical cooling: supply air not colder than mixed air"),
    "fc13": ((ECON_MECH, MECH), ("sat", "sat_sp", "cooling_valve"), "supply air above set-point with full cooling"),
    "apar_sat": ((HEATING, ECON, ECON_MECH, MECH), ("sat", "sat_sp"), "supply air does not track its set-point"),
    "apar_simultaneous": ((UNKNOWN,), ("heating_valve", "cooling_valve"), "heating and cooling valves open together"),
}
RULE_NAMES = tuple(RULES)
N_RULES = len(RULE_NAMES)
# the thresholds' model (pydantic) is in .config, imported on first use; the diagnoser reads its plain twin too
__getattr__ = lazy_exports(__name__, {"FddParams": "drivers.bacnet.config"})


def modes(x: np.ndarray, min_oa: float, e_signal: float) -> np.ndarray:
    """Operating mode per sample from the control signals (``x``: roles x samples)."""
    n = x.shape[1]
    out = np.empty(n, np.int8)
    for i in range(n):
        heat, cool, damper, fan = x[I_HEAT, i], x[I_COOL, i], x[I_DAMPER, i], x[I_FAN, i]
        if not fan > e_signal:  # NaN fan speed: treat as running only if anything else says so
            out[i] = OFF if fan == fan else UNKNOWN
        elif heat > e_signal and cool > e_signal:
            out[i] = UNKNOWN
        elif heat > e_signal:
            out[i] = HEATING
        elif cool <= e_signal and damper > min_oa + e_signal:
            out[i] = ECON
        elif cool > e_signal and damper >= 100.0 - e_signal:
            out[i] = ECON_MECH
        elif cool > e_signal and damper <= min_oa + e_signal:
            out[i] = MECH
        else:
            out[i] = UNKNOWN
    return out


def conditions(x: np.ndarray, mode: np.ndarray, e: float, fan_heat: float, e_static: float, e_speed: float,
               e_signal: float, min_oa: float, e_oa: float, dt_min: float, sat_band: float) -> np.ndarray:
    """Rule x sample: True where the rule's fault condition holds (NaN inputs never fault)."""
    n = x.shape[1]
    out = np.zeros((N_RULES, n), np.bool_)
    e2 = math.sqrt(2.0) * e
    for i in range(n):
        m = mode[i]
        oat, rat, mat, sat, sp = x[0, i], x[1, i], x[2, i], x[3, i], x[4, i]
        damper, cool, heat, fan, st, st_sp = x[5, i], x[6, i], x[7, i], x[8, i], x[9, i], x[10, i]
        running = m != OFF
        air = m == HEATING or m == ECON or m == ECON_MECH or m == MECH
        out[0, i] = running and st < st_sp - e_static and fan >= 99.0 - e_speed
        out[1, i] = air and mat + e < min(rat - e, oat - e)
        out[2, i] = air and mat - e > max(rat + e, oat + e)
        out[3, i] = m == HEATING and sat + e <= mat - e + fan_heat
        if (m == HEATING or m == MECH) and abs(rat - oat) >= dt_min:
            oaf = 100.0 * (mat - rat) / (oat - rat)
            out[4, i] = abs(oaf - max(damper, min_oa)) > e_oa
        out[5, i] = m == ECON and abs(sat - fan_heat - mat) > e2
        out[6, i] = m == ECON_MECH and abs(mat - oat) > e2
        out[7, i] = (m == ECON_MECH or m == MECH) and sat - e - fan_heat >= mat + e
        out[8, i] = (m == ECON_MECH or m == MECH) and sat > sp + e and cool >= 99.0 - e_signal
        out[9, i] = air and abs(sat - sp) > sat_band
        out[10, i] = m == UNKNOWN and heat > e_signal and cool > e_signal
    return out


def debounce(cond: np.ndarray, active: np.ndarray, run: np.ndarray, on_count: int, off_count: int) -> np.ndarray:
    """Fault state per rule and sample; ``active``/``run`` (per rule) carry over between calls, updated in place.

    ``run`` counts consecutive samples disagreeing with ``active``; the state flips when it reaches
    ``on_count`` (to fault) or ``off_count`` (to clear)."""
    k, n = cond.shape
    out = np.zeros((k, n), np.bool_)
    for r in range(k):
        for i in range(n):
            if cond[r, i] != active[r]:
                run[r] += 1
                if run[r] >= (on_count if cond[r, i] else off_count):
                    active[r] = cond[r, i]
                    run[r] = 0
            else:
                run[r] = 0
            out[r, i] = active[r]
    return out


@dataclass(frozen=True, slots=True)
class FaultEvent:
    rule: str
    state: str  # "start" or "end"
    ts_ms: int
    mode: str
    description: str
    evidence: dict[str, float]  # the rule's inputs at the sample that decided
    hours: float  # hours in fault (0 at start; the episode's length at end)


class Diagnoser:
    """Rules over a stream of AHU samples; roles absent from the config are NaN (their rules never fire)."""

    def __init__(self, params: FddParams):
        self.p = params
        k = len(RULE_NAMES)
        self.active = np.zeros(k, np.bool_)
        self.run = np.zeros(k, np.int64)
        self.since = np.zeros(k, np.int64)  # ts of the start of the current episode
        self.hours = np.zeros(k, np.float64)  # hours in fault, all episodes

    def process(self, ts: np.ndarray, x: np.ndarray) -> list[FaultEvent]:
        """Samples ``x`` (len(ROLES) x n, NaN where unknown) at ``ts`` (epoch ms); the events they cause."""
        p = self.p
        mode = modes(x, p.min_oa, p.e_signal)
        cond = conditions(x, mode, p.e_temp, p.fan_heat, p.e_static, p.e_speed, p.e_signal, p.min_oa, p.e_oa,
                          p.dt_min, p.sat_band)
        before = self.active.copy()
        state = debounce(cond, self.active, self.run, p.on_count, p.off_count)
        events: list[FaultEvent] = []
        prev_ts = getattr(self, "_last_ts", None)
        for r, rule in enumerate(RULE_NAMES):
            was = bool(before[r])
            for i in range(len(ts)):
                now = bool(state[r, i])
                if was and prev_ts is not None:
                    self.hours[r] += (int(ts[i]) - prev_ts) / 3_600_000
                if now != was:
                    if now:
                        self.since[r] = int(ts[i])
                    events.append(self._event(rule, r, now, int(ts[i]), int(mode[i]), x[:, i]))
                was = now
                prev_ts = int(ts[i])
            prev_ts = getattr(self, "_last_ts", None)
        if len(ts):
            self._last_ts = int(ts[-1])
        return sorted(events, key=lambda e: e.ts_ms)

    def _event(self, rule: str, r: int, start: bool, ts: int, mode: int, col: np.ndarray) -> FaultEvent:
        _, roles, text = RULES[rule]
        evidence = {role: round(float(col[R[role]]), 3) for role in roles}
        hours = 0.0 if start else (ts - int(self.since[r])) / 3_600_000
        return FaultEvent(rule, "start" if start else "end", ts, MODE_NAMES[mode], text, evidence, round(hours, 3))

    def episode_hours(self, now_ms: int) -> dict[str, float]:
        """Per rule: hours the current fault has lasted (0 when clear)."""
        return {rule: (now_ms - int(self.since[r])) / 3_600_000 if self.active[r] else 0.0
                for r, rule in enumerate(RULE_NAMES)}
