"""The shipped anomaly detector on a second public labelled set it was never tuned to: SKAB, the Skoltech
Anomaly Benchmark (github.com/waico/SKAB, GPL-3.0; 34 labelled files from a water-circulation test bed, one
reading a second, 8 sensor channels each; valve closures, leaks, rotor imbalance, cavitation ...).

Run: python tests/bench/bench_skab.py [path to SKAB, default ../shared/data/skab]

Each file is one device: its 8 channels are 8 series of one batch stream through the numba kernel at the
shipped `[processing.anomaly]` defaults, and events are grouped per device as the agent reports them
(agent/processing/events.py: a device event starts when a first channel turns anomalous while none is,
and lasts until every channel that joined it has calmed down). Strictly causal, one pass, no labels.

Scored two ways, both on the labelled anomalous regions (column ``anomaly``; each contiguous run of 1s is one
region):
- **events**: a region is found when a device event starts inside it (first start counts; its delay is from
  the region's first row); a start outside every region is a false alarm. Precision, recall, F1, false alarms
  per hour of unlabelled operation, median delay.
- **NAB scorer** (tests/bench/nab.py, standard profile, the regions as NAB windows) on device event starts,
  and on the per-reading detection score (largest over channels) at the default threshold and its optimum.
Then the false alarms per hour on `anomaly-free/anomaly-free.csv` (normal operation only).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from agent.processing import kernels
from agent.processing.config import AnomalyConfig
from agent.processing.jit import compiled
from agent.processing.kernels.detect import EV_END, UTC, new_state

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nab  # noqa: E402
from bench_nab import shipped  # noqa: E402

detect_step = compiled(kernels.detect).detect_step
ARGV = sys.argv[1:]
ROOT = Path(ARGV[0]) if ARGV else Path(__file__).resolve().parents[3] / "shared" / "data" / "skab"


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch ms, values [rows x channels], anomaly label 0/1) of one SKAB file."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    head, rows = rows[0], [r for r in rows[1:] if r]
    chans = [i for i, h in enumerate(head) if h not in ("datetime", "anomaly", "changepoint")]
    ts = np.array([r[0] for r in rows], dtype="datetime64[ms]").astype(np.int64)
    vals = np.array([[float(r[i]) for i in chans] for r in rows])
    lab = np.array([float(r[head.index("anomaly")]) for r in rows]) if "anomaly" in head else np.zeros(len(rows))
    order = np.argsort(ts, kind="stable")
    return ts[order], vals[order], lab[order]


def run_device(ts: np.ndarray, vals: np.ndarray, prm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: 1.0 where a device event starts, and the largest detection score over the channels."""
    n, c = vals.shape
    series = np.tile(np.arange(c, dtype=np.int32), n)
    t = np.repeat(ts, c)
    v = np.ascontiguousarray(vals.reshape(-1))
    score, ev = np.empty(n * c), np.zeros(n * c, np.int8)
    detect_step(series, t, v, np.zeros(n * c, np.uint32), np.ones(c, np.bool_), np.zeros(c), np.zeros(c), *UTC,
                new_state(c, prm), prm, score, ev)
    starts = np.zeros(n)
    active: set[int] = set()
    for r in range(n * c):
        k = int(ev[r])
        if k == 0:
            continue
        s = r % c
        if k == EV_END:
            active.discard(s)
        else:
            if not active:
                starts[r // c] = 1.0
            active.add(s)
    return starts, score.reshape(n, c).max(axis=1)


def regions(lab: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0.0], (lab > 0).astype(float), [0.0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), (np.nonzero(d == -1)[0] - 1).tolist(), strict=True))


def evaluate(root: Path, prm: np.ndarray) -> dict:
    paths = sorted(p for p in (root / "data").glob("*/*.csv") if p.parent.name != "anomaly-free")
    files, starts, scores = [], [], []
    tp = fn = fp = 0
    free_s = 0.0
    delays = []
    for p in paths:
        ts, vals, lab = load(p)
        st, sc = run_device(ts, vals, prm)
        wins = regions(lab)
        files.append(nab.LabelledFile(f"{p.parent.name}/{p.name}", vals[:, 0], ts.astype("datetime64[ms]"), wins))
        starts.append(st)
        scores.append(sc)
        inside = np.zeros(len(lab), bool)
        for a, b in wins:
            inside[a:b + 1] = True
            hit = np.nonzero(st[a:b + 1])[0]
            if len(hit):
                tp += 1
                delays.append((ts[a + hit[0]] - ts[a]) / 1000.0)
            else:
                fn += 1
        fp += int(st[~inside].sum())
        free_s += float((~inside).sum()) * float(np.median(np.diff(ts))) / 1000.0
    prof = nab.load_profiles(Path(__file__).resolve().parents[3] / "shared" / "data" / "nab" / "config" / "profiles.json")["standard"] \
        if (Path(__file__).resolve().parents[3] / "shared" / "data" / "nab").is_dir() else nab.Profile(tp=1.0, fp=0.11, fn=1.0)
    from bench_nab import at_threshold

    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "files": len(files), "regions": tp + fn, "tp": tp, "fn": fn, "fp": fp, "precision": prec, "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "fp_per_hour": fp / (free_s / 3600.0),
        "delay_s": float(np.median(delays)) if delays else float("nan"),
        "nab_events": at_threshold(files, starts, prof, 0.5),
        "nab_score_default": at_threshold(files, scores, prof, AnomalyConfig().threshold),
        "nab_score_best": nab.evaluate(files, scores, prof),
    }


def free_run(root: Path, prm: np.ndarray) -> tuple[int, float]:
    ts, vals, _ = load(root / "data" / "anomaly-free" / "anomaly-free.csv")
    st, _ = run_device(ts, vals, prm)
    return int(st.sum()), (ts[-1] - ts[0]) / 3_600_000.0


def main() -> None:
    rows = {
        "shipped defaults": shipped(),
        "  size only (no flat line, time of day, step)": shipped(flat=False, tod=False, step=False),
        "  without the step signal": shipped(step=False),
        "  without the time-of-day signal": shipped(tod=False),
        "  without the minimum event length": shipped(min_event=0),
        "  without the range test": shipped(range_margin=-1.0),
        "  without the young noisy range rule": shipped(young=False),
        "  without pattern novelty": shipped(pattern=False),
        "  without the record rule": shipped(record=False),
        "  without the change point": shipped(change=False),
        "  without the three (the detector before)": shipped(pattern=False, record=False, change=False),
    }
    print(f"SKAB at {ROOT}: device events (8 channels per device), shipped [processing.anomaly] defaults")
    print(f"{'detector':50} {'found':>7} {'false':>6} {'prec':>5} {'recall':>6} {'F1':>5} {'FA/h':>6} {'delay s':>8} "
          f"{'NAB events':>10} {'NAB score default / optimum @ thr':>34}")
    for name, prm in rows.items():
        r = evaluate(ROOT, prm)
        best = r["nab_score_best"]
        print(f"{name:50} {r['tp']:>3}/{r['regions']:<3} {r['fp']:>6} {r['precision']:5.2f} {r['recall']:6.2f} {r['f1']:5.2f} "
              f"{r['fp_per_hour']:6.2f} {r['delay_s']:8.0f} {r['nab_events']:10.1f} "
              f"{r['nab_score_default']:14.1f} / {best['score']:5.1f} @ {best['threshold']:5.3f}")
    n, hours = free_run(ROOT, shipped())
    print(f"anomaly-free run ({hours:.1f} h, shipped defaults): {n} device events")


if __name__ == "__main__":
    main()
