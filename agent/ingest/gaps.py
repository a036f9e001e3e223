"""Gap bookkeeping for one (gateway, stream): pure interval arithmetic on inclusive seq ranges."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

Range = tuple[int, int]  # inclusive


def subtract(ranges: Iterable[Range], seqs: list[int]) -> list[Range]:
    """``ranges`` minus the sorted, distinct ``seqs``."""
    out: list[Range] = []
    for a, b in ranges:
        lo, hi = bisect_left(seqs, a), bisect_right(seqs, b)
        start = a
        for s in seqs[lo:hi]:
            if s > start:
                out.append((start, s - 1))
            start = s + 1
        if start <= b:
            out.append((start, b))
    return out


def update(span: Range | None, gaps: list[Range], new: list[int]) -> tuple[Range, list[Range]]:
    """The stream's new (min_seq, max_seq) and missing ranges after the sorted, distinct, never-seen
    seqs ``new`` arrived. Before the first seq seen nothing is known, so nothing there is a gap until
    a lower seq arrives."""
    lo, hi = new[0], new[-1]
    if span is None:
        candidates = [(lo, hi)]
    else:
        old_lo, old_hi = span
        candidates = list(gaps)
        if lo < old_lo:
            candidates.insert(0, (lo, old_lo - 1))
        if hi > old_hi:
            candidates.append((old_hi + 1, hi))
        lo, hi = min(lo, old_lo), max(hi, old_hi)
    return (lo, hi), subtract(candidates, new)
