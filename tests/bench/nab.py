"""NAB-style scoring (Lavin & Ahmad 2015), written from the published method.

Each labelled anomaly window rewards the earliest detection inside it with a scaled sigmoid of
its position (1 at the window's start, about 0 at its end); a window without detection costs
``fn`` weight; a detection outside windows costs ``fp`` weight x a sigmoid of its distance past the
previous window (-1 before the first window or far past one). The first 15 % of each file (at
most 750 rows) is a probationary period that is not scored. The threshold on the detector's score
is optimised over the whole corpus per profile; totals are normalised so the null detector scores
0 and the perfect detector 100.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class Profile:
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


def load_profiles(path: Path) -> dict[str, Profile]:
    raw = json.loads(Path(path).read_text())
    out = {}
    for name, p in raw.items():
        c = p["CostMatrix"]
        out[name] = Profile(tp=c["tpWeight"], fp=c["fpWeight"], fn=c["fnWeight"], tn=c["tnWeight"])
    return out


def scaled_sigmoid(x: float) -> float:
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_length(n: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


@dataclass(slots=True)
class LabelledFile:
    name: str
    values: np.ndarray  # float64
    timestamps: np.ndarray  # datetime64[s]
    windows: list[tuple[int, int]]  # inclusive row index ranges


def load_corpus(root: Path) -> list[LabelledFile]:
    root = Path(root)
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for name in sorted(labels):
        with open(root / "data" / name, newline="") as f:
            rows = list(csv.reader(f))[1:]
        ts = np.array([r[0] for r in rows], dtype="datetime64[s]")
        vals = np.array([float(r[1]) for r in rows])
        wins = []
        for a, b in labels[name]:
            ta, tb = np.datetime64(a.split(".")[0].replace(" ", "T"), "s"), np.datetime64(b.split(".")[0].replace(" ", "T"), "s")
            ia, ib = int(np.searchsorted(ts, ta, "left")), int(np.searchsorted(ts, tb, "right")) - 1
            wins.append((ia, ib))
        files.append(LabelledFile(name, vals, ts, wins))
    return files


def point_weights(n: int, windows: list[tuple[int, int]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the weighted score a detection there earns, and its window number (-1 outside, -2 probation)."""
    w = np.empty(n)
    label = np.full(n, -1, np.int64)
    prev_right, prev_width = None, None
    wins = sorted(windows)
    wi = 0
    cur = None
    for i in range(n):
        if cur is None and wi < len(wins) and i == wins[wi][0]:
            cur = wi
            wi += 1
        if cur is not None:
            a, b = wins[cur]
            width = float(b - a + 1)
            w[i] = scaled_sigmoid(-(b - i + 1) / width) * profile.tp / scaled_sigmoid(-1.0)
            label[i] = cur
            if i == b:
                prev_right, prev_width = b, width
                cur = None
        else:
            if prev_right is None:
                u = -1.0
            else:
                u = scaled_sigmoid(abs(prev_right - i) / (prev_width - 1.0)) if prev_width > 1 else -1.0
            w[i] = u * profile.fp
    label[: probation_length(n)] = -2
    return w, label


def score_curve(scores: np.ndarray, windows: list[tuple[int, int]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """File score as a function of threshold: (thresholds descending, score when detecting >= threshold)."""
    n = len(scores)
    w, label = point_weights(n, windows, profile)
    nwin = len(windows)
    order = np.argsort(-scores, kind="stable")
    parts = np.full(nwin, -profile.fn)
    fp = 0.0
    th, val = [], []
    s_sorted = scores[order]
    for j, i in enumerate(order):
        lab = label[i]
        if lab >= 0:
            if w[i] > parts[lab]:
                parts[lab] = w[i]
        elif lab == -1:
            fp += w[i]
        if j == n - 1 or s_sorted[j + 1] != s_sorted[j]:
            th.append(s_sorted[j])
            val.append(parts.sum() + fp)
    return np.array(th), np.array(val)


def file_score_at(curve: tuple[np.ndarray, np.ndarray], threshold: float, null: float) -> float:
    th, val = curve  # th descending; detections are scores >= threshold
    k = int(np.searchsorted(-th, -threshold, "right"))  # number of distinct scores >= threshold
    return null if k == 0 else float(val[k - 1])


def evaluate(files: list[LabelledFile], scores: list[np.ndarray], profile: Profile) -> dict:
    """Optimise the threshold over the corpus; return normalised score, raw score and threshold."""
    curves = [score_curve(s, f.windows, profile) for f, s in zip(files, scores, strict=True)]
    nulls = [-profile.fn * len(f.windows) for f in files]
    perfect = sum(profile.tp * len(f.windows) for f in files)
    null_total = sum(nulls)
    cands = np.unique(np.concatenate([c[0] for c in curves] + [np.array([np.inf])]))
    total = np.zeros(cands.shape[0])
    for (th, val), null in zip(curves, nulls, strict=True):
        k = np.searchsorted(-th, -cands, "right")
        total += np.where(k == 0, null, val[np.maximum(k - 1, 0)])
    best = int(np.argmax(total))
    raw = float(total[best])
    norm = 100.0 * (raw - null_total) / (perfect - null_total) if perfect != null_total else 0.0
    return {"score": norm, "raw": raw, "threshold": float(cands[best]), "null": null_total, "perfect": perfect}
