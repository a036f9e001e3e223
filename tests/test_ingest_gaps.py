"""Gap bookkeeping (agent.ingest.gaps): whatever order and batching messages arrive in, the recorded
gaps are exactly the seqs missing inside the span seen."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.ingest.gaps import Range, subtract, update


def expand(ranges: list[Range]) -> set[int]:
    return {s for a, b in ranges for s in range(a, b + 1)}


@given(st.lists(st.lists(st.integers(1, 60), min_size=1, max_size=8, unique=True), min_size=1, max_size=12))
def test_gaps_are_the_missing_seqs_of_the_span_in_any_arrival_order(batches: list[list[int]]) -> None:
    span, gaps, seen = None, [], set()
    for batch in batches:
        new = sorted(set(batch) - seen)
        if not new:
            continue
        span, gaps = update(span, gaps, new)
        seen |= set(new)
        lo, hi = span
        assert (lo, hi) == (min(seen), max(seen))
        assert expand(gaps) == set(range(lo, hi + 1)) - seen
        assert gaps == sorted(gaps) and all(a <= b for a, b in gaps)
        assert all(b + 1 < c for (_, b), (c, _) in zip(gaps, gaps[1:], strict=False))  # disjoint, not adjacent


def test_subtract_splits_ranges() -> None:
    assert subtract([(1, 10)], [1, 5, 10]) == [(2, 4), (6, 9)]
    assert subtract([(3, 3), (7, 9)], [3, 8]) == [(7, 7), (9, 9)]
    assert subtract([(1, 2)], []) == [(1, 2)]
