"""NAB scores of the shipped anomaly detector, per profile at the default threshold and at each profile's
optimum, what each technique adds, baselines for comparison, and the detector's throughput.

Run: python tests/bench/bench_nab.py [path to NAB corpus, default ../shared/data/nab] [--days N] [--no-nab] [--no-false-alarms] [--speed] [--loss]
[--without-change]

Results are strictly causal: one pass per series, no labels, no look-ahead, the same parameters for
every file (the shipped `[processing.anomaly]` defaults). The scorer is tests/bench/nab.py.

Two things are scored: anomaly *events* (a reading scores when an event starts there; what
`anomaly_start` reports) and the per-reading ANOMALY quality *bit* (a reading whose size score reaches the
threshold where a size anomaly begins, or that lies beyond everything the series has shown; sizes only).
Rows "without ..." switch one technique off to show what it adds
(flat line, time of day, step, minimum event length, range test, young noisy range rule, pattern novelty, record rule,
change point, event hold); NAB timestamps are read as UTC. Then the false-alarm figure: anomaly events per device-day in ordinary operation of
the demo's devices and of every meter profile with 2 % load steps (tests/meter_day.py), at the defaults.
``--loss``: where the shipped events lose their points, per NAB category and profile (missed windows, late
detections, false positives), and the late loss if every found window were detected at its centre.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.model import Quality
from agent.processing import kernels
from agent.processing.config import AnomalyConfig
from agent.processing.jit import compiled
from agent.processing.kernels.detect import UTC, new_state, params
from agent.processing.localtime import tz_table

# numba's own cache (beside the sources, without NUMBA_CACHE_DIR) keys each function on its own file: an edit to
# kernels/novelty.py alone would leave detect_step's cached build running the old code. A cache directory makes
# agent.processing.jit key the builds on every kernel source, as the agent's does.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edge-agent-bench-numba"))
detect_step = compiled(kernels.detect).detect_step  # the numba build, as the agent runs it when compiled


def score_series(values: np.ndarray, prm: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Detection scores of one series from scratch (kernels.detect.score_series, compiled); ``ts`` epoch ms,
    read as UTC (NAB's timestamps carry no zone)."""
    n = values.shape[0]
    score, event = np.empty(n), np.zeros(n, np.int8)
    detect_step(np.zeros(n, np.int32), ts, np.ascontiguousarray(values, np.float64), np.zeros(n, np.uint32),
                np.ones(1, np.bool_), np.zeros(1), np.zeros(1), *UTC, new_state(1, prm), prm, score, event)
    return score


def bit_series(values: np.ndarray, prm: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """1.0 where a reading carries the ANOMALY quality bit, else 0."""
    n = values.shape[0]
    q = np.zeros(n, np.uint32)
    detect_step(np.zeros(n, np.int32), ts, np.ascontiguousarray(values, np.float64), q, np.ones(1, np.bool_),
                np.zeros(1), np.zeros(1), *UTC, new_state(1, prm), prm, np.empty(n), np.zeros(n, np.int8))
    return ((q & int(Quality.ANOMALY)) != 0).astype(np.float64)


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scorer next to this file
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/meter_day.py
import nab  # noqa: E402

ARGV = sys.argv[1:]
DAYS = 1.0  # simulated days per device for the false-alarm figure
if "--days" in ARGV:
    DAYS = float(ARGV.pop(ARGV.index("--days") + 1))
    ARGV.remove("--days")
NO_NAB = "--no-nab" in ARGV  # the false-alarm figure only
if NO_NAB:
    ARGV.remove("--no-nab")
WITHOUT = "--without-change" in ARGV  # the false-alarm figure with the change point switched off
if WITHOUT:
    ARGV.remove("--without-change")
NO_FA = "--no-false-alarms" in ARGV  # NAB, throughput and state, without the (slow) false-alarm figure
if NO_FA:
    ARGV.remove("--no-false-alarms")
SPEED = "--speed" in ARGV  # throughput and state size only
if SPEED:
    ARGV.remove("--speed")
LOSS = "--loss" in ARGV  # the loss breakdown only
if LOSS:
    ARGV.remove("--loss")
ROOT = Path(ARGV[0]) if ARGV else Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


def shipped(**over) -> np.ndarray:
    a = AnomalyConfig()
    kw = dict(alpha=a.alpha, warmup=a.warmup_samples, threshold=a.threshold, release=a.release,
              quiet=a.quiet_samples, history=a.history_samples, range_margin=a.range_margin)
    kw.update(over)
    return params(**kw)


NO_CHANGE = dict(change=False)  # the shipped detector without the change point
BEFORE = dict(pattern=False, record=False, change=False)  # the detector before pattern novelty, the record rule and the change point


def ewma_z(v: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    out = np.zeros(len(v))
    m, var = v[0], 0.0
    for i, x in enumerate(v):
        z = abs(x - m) / np.sqrt(var + 1e-12)
        out[i] = z / (z + 3.0)
        d = x - m
        m += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return out


def ms(f) -> np.ndarray:
    return f.timestamps.astype("datetime64[ms]").astype(np.int64)


def at_threshold(files, scores, profile, threshold: float) -> float:
    curves = [nab.score_curve(s, f.windows, profile) for f, s in zip(files, scores, strict=True)]
    nulls = [-profile.fn * len(f.windows) for f in files]
    raw = sum(nab.file_score_at(c, threshold, n) for c, n in zip(curves, nulls, strict=True))
    perfect = sum(profile.tp * len(f.windows) for f in files)
    return 100.0 * (raw - sum(nulls)) / (perfect - sum(nulls))


def throughput(prm: np.ndarray, n_series: int = 1000, per_call: int = 10, calls: int = 2000) -> float:
    """Samples per CPU second for agent-sized batches: ``per_call`` readings of each of ``n_series`` series per call."""
    rng = np.random.default_rng(0)
    st = new_state(n_series, prm)
    enabled = np.ones(n_series, np.bool_)
    series = np.tile(np.arange(n_series, dtype=np.int32), per_call)
    m = series.shape[0]
    q, score, ev = np.zeros(m, np.uint32), np.empty(m), np.zeros(m, np.int8)
    batches = [rng.normal(100, 5, m) for _ in range(8)]
    tz = tz_table("Asia/Shanghai", 1_704_067_200_000, 1_704_067_200_000 + 400 * 86_400_000)  # the shipped zone
    ts0 = 1_704_067_200_000 + np.repeat(np.arange(per_call, dtype=np.int64), n_series) * 1000
    detect_step(series, ts0, batches[0], q, enabled, np.zeros(n_series), np.zeros(n_series), *tz, st, prm, score, ev)  # compile
    t0 = time.process_time()  # CPU time of this process: what one core does, however loaded the machine
    for i in range(calls):
        detect_step(series, ts0 + i * per_call * 1000, batches[i % 8], q, enabled, np.zeros(n_series), np.zeros(n_series), *tz, st,
                    prm, score, ev)
    return m * calls / (time.process_time() - t0)


def main() -> None:
    if NO_NAB:
        false_alarms()
        return
    if SPEED:
        throughputs()
        return
    files = nab.load_corpus(ROOT)
    profiles = nab.load_profiles(ROOT / "config" / "profiles.json")
    if LOSS:
        loss(files, profiles)
        return
    default_th = AnomalyConfig().threshold
    detectors = {
        "shipped defaults: events": lambda v, t: score_series(v, shipped(), t),
        "shipped defaults: ANOMALY bit": lambda v, t: bit_series(v, shipped(), t),
        "  size only: no flat line, time of day, step": lambda v, t: score_series(v, shipped(flat=False, tod=False, step=False), t),
        "  size and step signal only": lambda v, t: score_series(v, shipped(flat=False, tod=False), t),
        "  without the step signal": lambda v, t: score_series(v, shipped(step=False), t),
        "  without the flat-line signal": lambda v, t: score_series(v, shipped(flat=False), t),
        "  without the time-of-day signal": lambda v, t: score_series(v, shipped(tod=False), t),
        "  without the minimum event length": lambda v, t: score_series(v, shipped(min_event=0), t),
        "  without the range test": lambda v, t: score_series(v, shipped(range_margin=-1.0), t),
        "  without the young noisy range rule": lambda v, t: score_series(v, shipped(young=False), t),
        "  without pattern novelty": lambda v, t: score_series(v, shipped(pattern=False), t),
        "  without the record rule": lambda v, t: score_series(v, shipped(record=False), t),
        "  without the change point": lambda v, t: score_series(v, shipped(**NO_CHANGE), t),
        "  without the three (the detector before)": lambda v, t: score_series(v, shipped(**BEFORE), t),
        "  ... ANOMALY bit without the three": lambda v, t: bit_series(v, shipped(**BEFORE), t),
        "  without event hold (quiet=1,release=1)": lambda v, t: score_series(v, shipped(quiet=1, release=0.999, min_event=0), t),
        "  surprise calibration only": lambda v, t: score_series(
            v, shipped(range_margin=-1.0, quiet=1, release=0.999, min_event=0, flat=False, tod=False, step=False), t),
        "EWMA z-score (baseline)": lambda v, t: ewma_z(v),
        "null": lambda v, t: np.zeros(len(v)),
    }
    only = [a for a in ARGV[1:]]  # optional detector name prefixes to run (after the corpus path)
    if only:
        detectors = {k: fn for k, fn in detectors.items() if any(k.strip().startswith(o) for o in only)}
    names = list(profiles)
    print(f"NAB corpus: {len(files)} files, {sum(len(f.values) for f in files):,} rows, "
          f"{sum(len(f.windows) for f in files)} windows; default threshold {default_th}")
    print(f"{'detector':42} " + " ".join(f"{n[:18]:>28}" for n in names))
    print(f"{'':42} " + " ".join(f"{'default / optimum @ thr':>28}" for _ in names))
    for dname, fn in detectors.items():
        scores = [fn(f.values.copy(), ms(f)) for f in files]
        cells = []
        for n in names:
            best = nab.evaluate(files, scores, profiles[n])
            cells.append(f"{at_threshold(files, scores, profiles[n], default_th):6.1f} / {best['score']:5.1f} @ {best['threshold']:5.3f}")
        print(f"{dname:42} " + " ".join(f"{c:>28}" for c in cells))
    print("published (standard, optimum): ARTime 74.9, Numenta HTM 70.5, CAD OSE 69.9, Twitter ADVec 47.1")
    if not NO_FA:
        false_alarms()
    throughputs()


def loss(files, profiles) -> None:
    """Points lost by the shipped events at the default threshold, against the perfect detector: windows missed,
    detections late in their window (NAB rewards the earliest by a sigmoid of its position), false positives."""
    th = AnomalyConfig().threshold
    scores = [score_series(f.values.copy(), shipped(), ms(f)) for f in files]
    for pname, prof in profiles.items():
        null = sum(-prof.fn * len(f.windows) for f in files)
        norm = 100.0 / (sum(prof.tp * len(f.windows) for f in files) - null)
        cats: dict[str, np.ndarray] = {}
        for f, s in zip(files, scores, strict=True):
            w, lab = nab.point_weights(len(s), f.windows, prof)
            det = np.nonzero(s >= th)[0]
            first: dict[int, int] = {}
            for i in det:
                if lab[i] >= 0 and lab[i] not in first:
                    first[int(lab[i])] = int(i)
            fps = [i for i in det if lab[i] == -1]
            c = cats.setdefault(f.name.split("/")[0], np.zeros(7))
            c += [len(f.windows), len(f.windows) - len(first), (len(f.windows) - len(first)) * (prof.tp + prof.fn),
                  sum(prof.tp - w[i] for i in first.values()),
                  sum(prof.tp - w[(f.windows[k][0] + f.windows[k][1]) // 2] for k in first), len(fps), -sum(w[i] for i in fps)]
        print(f"\nwhere the shipped events lose points ({pname}, threshold {th}; points of the normalised score):")
        print(f"{'category':24} {'windows':>7} {'missed':>6} {'missed loss':>11} {'late loss':>9} {'(at centre)':>11} {'FPs':>4} {'FP loss':>7}")
        tot = np.zeros(7)
        for name, c in sorted(cats.items()):
            tot += c
            print(f"{name:24} {c[0]:7.0f} {c[1]:6.0f} {c[2] * norm:11.2f} {c[3] * norm:9.2f} {c[4] * norm:11.2f} {c[5]:4.0f} {c[6] * norm:7.2f}")
        print(f"{'all':24} {tot[0]:7.0f} {tot[1]:6.0f} {tot[2] * norm:11.2f} {tot[3] * norm:9.2f} {tot[4] * norm:11.2f} {tot[5]:4.0f} "
              f"{tot[6] * norm:7.2f}   score {100 - (tot[2] + tot[3] + tot[6]) * norm:.1f}")


def throughputs() -> None:
    """Each configuration timed three times, interleaved, best of three (the machine may be shared)."""
    confs = {"shipped": shipped(), "without pattern novelty": shipped(pattern=False),
             "the detector before": shipped(**BEFORE), "without the step signal": shipped(step=False),
             "size only": shipped(flat=False, tod=False, step=False, **BEFORE),
             "without the change point": shipped(**NO_CHANGE)}
    best = dict.fromkeys(confs, 0.0)
    for _ in range(3):
        for k, prm in confs.items():
            best[k] = max(best[k], throughput(prm))
    print("detector throughput per CPU second (process time), 1000 series x 10 readings per call, best of 3 (goal >= 1 M samples/s):")
    for k, r in best.items():
        print(f"  {k:28} {r / 1e6:5.2f} M samples/s   ({r / best['size only']:.2f} x size only, "
              f"{r / best['the detector before']:.2f} x the detector before)")
    for name, prm in (("shipped", shipped()), ("without pattern novelty", shipped(pattern=False))):
        print(f"state per series, {name}: {new_state(1, prm).nbytes} bytes ({new_state(1, prm).shape[1]} float64)")


def false_alarms() -> None:
    from meter_day import SimAir, SimMeter, events_per_meter  # tests/meter_day.py

    if WITHOUT:  # the agent's processor builds its parameters from the config: switch the change point off underneath it
        import functools

        kernels.detect.params = functools.partial(params, **NO_CHANGE)

    demo = [  # the demo's devices (agent/demo/sims.py) whose values vary with time, as the demo reads them
        SimMeter("main-meter", "sdm630", ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "power_total",
                                          "energy_import", "frequency"), poll_s=2.0, seed=1),
        SimMeter("lighting-meter", "sdm120", ("voltage", "current", "power", "energy_import"), poll_s=2.0, seed=2),
        SimMeter("grid", "sdm630", ("power_total", "energy_import"), poll_s=1.0, seed=3),
        SimAir("lobby-pm", poll_s=2.0, seed=4),
    ]
    profiles = [SimMeter(f"{p}-all-registers", p, poll_s=1.0, seed=10 + i)
                for i, p in enumerate(("sdm630", "sdm120", "ddsu666", "dtsu666"))]
    seconds = DAYS * 86_400
    print(f"\nfalse alarms in ordinary operation, {DAYS:g} simulated day(s) per device, 2 % load steps every "
          f"5 min on average (meters), {'without the change point' if WITHOUT else 'shipped defaults'}:")
    print(f"{'device':28} {'events/device-day':>18} {'per-metric starts/day, every gauge, no floor':>46}")
    total, total_old = 0, 0
    for group in (demo, profiles):
        with tempfile.TemporaryDirectory() as d:
            now = events_per_meter(group, seconds, Path(d), jit="on")
        with tempfile.TemporaryDirectory() as d:
            old = events_per_meter(group, seconds, Path(d), jit="on", per_metric=True)
        for dev in now:
            total, total_old = total + now[dev], total_old + old[dev]
            print(f"{dev:28} {now[dev] / DAYS:18.2f} {old[dev] / DAYS:46.1f}")
    n = len(demo) + len(profiles)
    print(f"{'all':28} {total / DAYS / n:18.2f} {total_old / DAYS / n:46.1f}   (budget: <= 1 event per device-day)")


if __name__ == "__main__":
    main()
