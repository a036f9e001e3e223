"""The processing stage the pipeline calls: quality checks, counters, energy, windows, anomalies.

``process`` and ``flush`` return what to publish; the batch itself is only annotated (quality bits
set in place), never dropped or reordered.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model import Batch, MetricKind
from ..series import SeriesTable
from . import aot, jit
from .building import BuildingChecks
from .carbon import CarbonFactors
from .localtime import ZoneTable
from .options import JitMode
from .tariff import Tariff

if TYPE_CHECKING:
    from ..config.schema import AgentConfig
    from .config import ProcessingConfig

log = logging.getLogger("edge_agent.processing")
AUTO_JIT_SHARE = 0.01  # 'auto': compile once the Python kernels take more than this share of a core
AUTO_JIT_WINDOW_S = 5.0  # ... measured over this many seconds of wall time
_END_OF_TIME = 2**62  # a cutoff after every window's end (epoch ms)


@dataclass(slots=True)
class ProcessResult:
    aggregates: list[tuple[str, dict]] = field(default_factory=list)
    energy: list[tuple[str, dict]] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


def _rows(on: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """State rows for the series where ``on``: each series' row (int32, as the kernels take series ids; 0 for
    the series left out) and ``columns`` by row, row 0 zero (the kernels skip it: its mode or flag is 0)."""
    row = np.where(on, np.cumsum(on), 0).astype(np.int32)
    return row, [np.concatenate((np.zeros(1, c.dtype), c[on])) for c in columns]


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


class Processor:
    def __init__(self, config: AgentConfig, series: SeriesTable, *, state_dir: Path, clock: Any):
        self.cache_dir = jit.configure_cache(state_dir)
        from .energy import EnergyLedger
        from .events import DeviceEvents
        from .kernels import aot_kernel_set, counters, detect, kernel_set, quality, window
        from .setup import build_params

        self.pc: ProcessingConfig = config.processing
        # 'auto': an ahead-of-time build when there is one (fast, and no numba in memory); else the
        # Python kernels until compiled ones are wanted (see prepare() and _maybe_compile()). 'on' is
        # numba's JIT, whether or not a build is present (loaded by prepare()).
        self.K = kernel_set(compiled=False)
        python_only = self.pc.jit is JitMode.OFF or jit.jit_disabled_by_env()
        if self.pc.jit is JitMode.AUTO and not python_only and (module := aot.load(self.cache_dir)) is not None:
            self.K = aot_kernel_set(module)
        if pruned := aot.prune(self.cache_dir):
            log.info("deleted kernel builds unused for %d days: %s", aot.UNUSED_DAYS, ", ".join(pruned))
        self._auto = (self.pc.jit is JitMode.AUTO and not python_only and not self.K.compiled
                      and jit.numba_available())
        self._busy_s = 0.0  # seconds spent in process() since _window_t0
        self._window_t0 = time.monotonic()
        self._compiling: threading.Thread | None = None
        self.series = series
        self.clock = clock
        self.devices = {d.name: d for d in config.devices}
        n = len(series)
        self.p = build_params(self.pc, self.devices, series)
        self.qi, self.qf = quality.new_state(n)
        # counter state only for counters and integrated power (row 0 stands for every other series, as
        # for the detector below)
        self.c_row, (self._c_mode, self._c_rollover, self._c_max_step, self._c_max_rise, self._c_gap) = _rows(
            self.p.mode != counters.MODE_NONE, self.p.mode, self.p.rollover, self.p.max_step, self.p.max_rise, self.p.gap_ms)
        self.ci, self.cf = counters.new_state(len(self._c_mode))
        # detector state only for the series the detector watches (a tenth of a meter's metrics by default):
        # row 0 stands for every other series (never enabled, never touched), so the kernel's input maps
        # series ids to rows with one gather
        self.det_row, (self._det_on, self._det_sig, self._det_rel) = _rows(
            self.p.detect, self.p.detect, self.p.significant, self.p.significant_rel)
        a = self.pc.anomaly
        self.det_params = detect.params(alpha=a.alpha, warmup=a.warmup_samples, threshold=a.threshold,
                                        release=a.release, quiet=a.quiet_samples, history=a.history_samples,
                                        range_margin=a.range_margin, skip=self.pc.reject_quality)
        self.det = detect.new_state(len(self._det_on), self.det_params)
        # window aggregates only for the series of devices that publish them (publish = "agg" or "both"):
        # for publish = "raw" (the default) they would be computed and then dropped
        agg = np.array([str(getattr(self.devices.get(s.device), "publish", "raw")) != "raw" for s in series], np.bool_)
        self._agg_rows: np.ndarray | None = None if agg.all() else agg  # None: every series is aggregated
        self.windows = [(w.value, w.ms, *window.new_state(n)) for w in self.pc.windows] if agg.any() else []
        self.zone = ZoneTable(self.pc.timezone)
        self.building = BuildingChecks(self.pc.timezone, list(self.p.meters)) if a.enabled and a.energy_checks else None  # local time of the detector's time-of-day baseline
        self.tariff = Tariff(self.pc.tariff, tz=self.pc.timezone)
        self.ledger = EnergyLedger(self.p.meters, self.p.methods, tariff=self.tariff, emission_factor=CarbonFactors.from_config(self.pc))
        self.reject = np.uint32(self.pc.reject_quality)
        self.grace_ms = int(self.pc.close_grace * 1000)
        self.is_counter = np.array([s.kind == MetricKind.COUNTER for s in series], np.bool_)
        self.events = DeviceEvents(series, threshold=a.threshold)
        self.anomalies_started = 0
        self.last_now = 0

    # -- kernels ----------------------------------------------------------------------------
    def prepare(self) -> dict:
        """Load the kernels the config asks for (numba's JIT for ``jit = "on"``; blocking, so run it
        off the event loop). Returns timing figures like :func:`warmup.warm`'s."""
        from .warmup import warm

        if self.pc.jit is JitMode.ON and not self.K.compiled and not jit.jit_disabled_by_env():
            return self._use_jit()
        if self.K.compiled:
            return {"cache_dir": str(self.cache_dir), "jit": True, "kernels": self.K.kind, "import_s": 0.0,
                    "compile_s": 0.0}
        return {**warm(self.cache_dir, compiled=False), "kernels": "python"}

    @property
    def compiled(self) -> bool:
        return bool(self.K.compiled) and (self.K.kind == "aot" or not jit.jit_disabled_by_env())

    def _use_compiled(self) -> dict:
        """Switch to compiled kernels: the ahead-of-time build (built in a separate process when missing,
        so numba stays out of this one), else numba's JIT (then LLVM's code is paged out). Blocking."""
        from .kernels import aot_kernel_set

        t0 = time.perf_counter()
        module = aot.load(self.cache_dir)
        if module is None and self.cache_dir is not None and jit.numba_available():
            why = aot.build_in_subprocess(self.cache_dir)
            module = aot.load(self.cache_dir)
            if module is None:
                log.info("no ahead-of-time kernels (%s): using numba's JIT", why)
        if module is not None:
            self.K = aot_kernel_set(module)  # one attribute store: the next process() call uses them
            return {"cache_dir": str(self.cache_dir), "jit": True, "kernels": "aot", "import_s": 0.0,
                    "compile_s": round(time.perf_counter() - t0, 3)}
        return self._use_jit()

    def _use_jit(self) -> dict:
        """Switch to numba's JIT kernels (compiled or loaded from the cache), then page LLVM's code out."""
        from .kernels import kernel_set
        from .warmup import warm

        timing = warm(self.cache_dir, compiled=True, build_aot=False)
        self.K = kernel_set(compiled=True)
        jit.page_out_compiler()
        return {**timing, "kernels": "jit"}

    def _maybe_compile(self, busy_s: float) -> None:
        """'auto': switch to compiled kernels (in a background thread) once the Python ones cost more
        than AUTO_JIT_SHARE of a core."""
        self._busy_s += busy_s
        elapsed = time.monotonic() - self._window_t0
        if elapsed < AUTO_JIT_WINDOW_S:
            return
        share, self._busy_s, self._window_t0 = self._busy_s / elapsed, 0.0, time.monotonic()
        if share > AUTO_JIT_SHARE and self._compiling is None:
            log.info("processing takes %.1f %% of a core with Python kernels: compiling them", share * 100)
            self._compiling = threading.Thread(target=self._compile, name="kernels", daemon=True)
            self._compiling.start()

    def _compile(self) -> None:
        try:
            timing = self._use_compiled()
        except Exception as e:  # noqa: BLE001 - the Python kernels keep working; say why once
            log.warning("cannot compile the processing kernels (%s): staying with the Python kernels", e)
            return
        finally:
            self._auto = False
        log.info("compiled processing kernels (%s) in use, ready in %.2f s", timing["kernels"],
                 timing["import_s"] + timing["compile_s"])

    # -- hot path ---------------------------------------------------------------------------
    def process(self, batch: Batch, now_ms: int) -> ProcessResult:
        if not self._auto:
            return self._process(batch, now_ms)
        t0 = time.perf_counter()
        try:
            return self._process(batch, now_ms)
        finally:
            self._maybe_compile(time.perf_counter() - t0)

    def _process(self, batch: Batch, now_ms: int) -> ProcessResult:
        res = ProcessResult()
        self.last_now = now_ms
        n = len(batch)
        if n == 0:
            return res
        K, p, a = self.K, self.p, self.pc.anomaly
        s, ts, v, q = batch.series, batch.ts, batch.value, batch.quality
        K.quality_step(s, ts, v, q, now_ms, p.lo, p.hi, p.stuck_n, p.stuck_tol, p.max_rate, p.stale_ms, self.qi, self.qf)
        delta = np.empty(n)
        since = np.empty(n, np.int64)
        K.counter_step(self.c_row[s], ts, v, q, self._c_mode, self._c_rollover, self._c_max_step, self._c_max_rise,
                       self._c_gap, self.ci, self.cf, delta, since)
        if a.enabled:
            score = np.empty(n)
            event = np.zeros(n, np.int8)
            tz_tr, tz_off = self.zone.covering(int(ts.min()), int(ts.max()))
            drow = self.det_row[s]
            K.detect_step(drow, ts, v, q, self._det_on, self._det_sig, self._det_rel, tz_tr, tz_off, self.det,
                          self.det_params, score, event)
            rows = np.flatnonzero(event)
            if rows.size:
                res.events.extend(self.events.add(s[rows], ts[rows], v[rows], score[rows], event[rows],
                                                  self.det[drow[rows]]))
                self.anomalies_started = self.events.started
        meter = p.meter_of[s]
        em = meter >= 0
        if em.any():
            se = s[em]
            self.ledger.add(meter[em], ts[em], delta[em] * p.kwh_factor[se], since=since[em], gap_ms=p.gap_ms[se])
        if self.windows:
            self._window_step(res, s, ts, v, q, delta)
        return res

    def _window_step(self, res: ProcessResult, s: np.ndarray, ts: np.ndarray, v: np.ndarray, q: np.ndarray,
                     delta: np.ndarray) -> None:
        if self._agg_rows is not None:  # some devices publish raw readings only: their rows are left out
            keep = self._agg_rows[s]
            if not keep.any():
                return
            if not keep.all():
                s, ts, v, q, delta = s[keep], ts[keep], v[keep], q[keep], delta[keep]
        n = len(s)
        for name, width, si, sf in self.windows:
            oi = np.empty((n, self.K.OUT_I), np.int64)
            of = np.empty((n, self.K.OUT_F))
            k = self.K.window_step(s, ts, v, q, delta, self.reject, width, self.p.gap_ms, si, sf, oi, of)
            res.aggregates.extend(self._agg_bodies(name, width, oi[:k], of[:k]))

    def _building(self, energy: list[tuple[str, dict]]) -> list[dict]:
        """Building energy checks on the hours just closed (events when a local day has closed)."""
        if self.building is None:
            return []
        return [e for name, body in energy for e in self.building.hour(name, body)]

    def flush(self, now_ms: int) -> ProcessResult:
        res = ProcessResult()
        self.last_now = now_ms
        cutoff = now_ms - self.grace_ms
        m = len(self.series)
        for name, width, si, sf in self.windows:
            oi = np.empty((m, self.K.OUT_I), np.int64)
            of = np.empty((m, self.K.OUT_F))
            k = self.K.window_flush(cutoff, width, self.p.gap_ms, si, sf, oi, of)
            res.aggregates.extend(self._agg_bodies(name, width, oi[:k], of[:k]))
        res.energy = self.ledger.close(cutoff)
        res.events.extend(self._building(res.energy))
        return res

    def split(self) -> ProcessResult:
        """Close every open window and energy hour now (the wall clock was stepped: a window never
        mixes readings from both sides of a step). Readings after it open new windows."""
        res = ProcessResult()
        m = len(self.series)
        for name, width, si, sf in self.windows:
            oi = np.empty((m, self.K.OUT_I), np.int64)
            of = np.empty((m, self.K.OUT_F))
            k = self.K.window_flush(_END_OF_TIME, width, self.p.gap_ms, si, sf, oi, of)
            res.aggregates.extend(self._agg_bodies(name, width, oi[:k], of[:k]))
        res.energy = self.ledger.close(_END_OF_TIME)
        res.events.extend(self._building(res.energy))
        return res

    # -- bodies -----------------------------------------------------------------------------
    def _agg_bodies(self, name: str, width: int, oi: np.ndarray, of: np.ndarray) -> list[tuple[str, dict]]:
        if oi.shape[0] == 0:
            return []
        groups: dict[tuple[str, int], list[dict]] = {}
        for r in range(oi.shape[0]):
            sid = int(oi[r, 0])
            device, m = self.series.label(sid)
            f = of[r]
            agg = {
                "metric": m.name, "unit": m.unit, "count": int(oi[r, 2]),
                "min": _num(f[0]), "max": _num(f[1]), "mean": _num(f[2]), "twa": _num(f[3]), "std": _num(f[4]),
                "first": _num(f[5]), "last": _num(f[6]), "gaps": int(oi[r, 3]),
            }
            if self.is_counter[sid]:
                agg["delta"] = _num(f[7])
            if oi[r, 4]:
                agg["rejected"] = int(oi[r, 4])
            if oi[r, 5]:
                agg["late"] = int(oi[r, 5])
            groups.setdefault((device, int(oi[r, 1])), []).append(agg)
        return [
            (dev, {"v": 1, "device": dev, "window": name, "start": start, "end": start + width, "aggregates": aggs})
            for (dev, start), aggs in groups.items()
        ]

    # -- status -----------------------------------------------------------------------------
    def summary(self) -> dict:
        now = self.last_now or int(self.clock.now_ms())
        from .kernels.counters import C_RESETS, C_ROLLOVERS

        return {
            "energy": self.ledger.summary(now),
            "timezone": self.pc.timezone,
            "emission_factor": self.ledger.carbon.value,
            "anomalies_active": len(self.events.open),  # devices in an anomaly event
            "anomalies_started": self.anomalies_started,
            "counter_resets": int(self.ci[:, C_RESETS].sum()),
            "counter_rollovers": int(self.ci[:, C_ROLLOVERS].sum()),
            "jit": self.compiled,
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
        }
