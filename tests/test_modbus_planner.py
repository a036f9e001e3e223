"""The request planner is optimal: checked against brute force over every partition."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus_meter.codec import load_profile
from drivers.modbus_meter.planner import Item, PlanError, naive_plan, plan


def partitions(xs):
    if not xs:
        yield []
        return
    first, rest = xs[0], xs[1:]
    for p in partitions(rest):
        yield [[first], *p]
        for i in range(len(p)):
            yield [*p[:i], [first, *p[i]], *p[i + 1:]]


def block_cost(block, max_regs, max_gap):
    """(1, span) if the block can be one request, else None; gaps measured between its own items."""
    b = sorted(block, key=lambda it: it.address)
    end, start = b[0].end, b[0].address
    for it in b[1:]:
        if it.address - end > max_gap:
            return None
        end = max(end, it.end)
    return (1, end - start) if end - start <= max_regs else None


def brute_force(items, max_regs, max_gap):
    best = None
    for p in partitions(list(items)):
        costs = [block_cost(b, max_regs, max_gap) for b in p]
        if None in costs:
            continue
        c = (len(p), sum(x[1] for x in costs))
        best = c if best is None or c < best else best
    return best


def check_feasible(requests, items, max_regs, max_gap):
    served = sorted(it.key for r in requests for it in r.items)
    assert served == sorted(it.key for it in items)
    for r in requests:
        assert r.count <= max_regs
        assert all(r.address <= it.address and it.end <= r.address + r.count and it.fc == r.fc for it in r.items)
        assert block_cost(r.items, max_regs, max_gap) is not None


item_lists = st.lists(
    st.tuples(st.sampled_from([3, 4]), st.integers(0, 60), st.sampled_from([1, 2, 4])), min_size=1, max_size=7
).map(lambda xs: [Item(i, fc, a, n) for i, (fc, a, n) in enumerate(xs)])


@settings(max_examples=150, deadline=None)
@given(item_lists, st.integers(4, 30), st.integers(0, 10))
def test_plan_matches_brute_force_optimum(items, max_regs, max_gap):
    requests = plan(items, max_registers=max_regs, max_gap=max_gap)
    check_feasible(requests, items, max_regs, max_gap)
    optimum = [brute_force([it for it in items if it.fc == fc], max_regs, max_gap) for fc in {it.fc for it in items}]
    assert (len(requests), sum(r.count for r in requests)) == (sum(o[0] for o in optimum), sum(o[1] for o in optimum))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2000), min_size=1, max_size=120, unique=True), st.integers(2, 125), st.integers(0, 40))
def test_large_register_sets_are_feasible_and_never_worse_than_naive(addrs, max_regs, max_gap):
    items = [Item(i, 4, a * 2, 2) for i, a in enumerate(addrs)]
    requests = plan(items, max_registers=max_regs, max_gap=max_gap)
    check_feasible(requests, items, max_regs, max_gap)
    assert len(requests) <= len(naive_plan(items))


def test_sdm630_full_map_plan():
    prof = load_profile("sdm630")
    items = [Item(i, r.fc, r.address, r.count) for i, r in enumerate(prof.registers)]
    requests = plan(items, max_registers=80, max_gap=80)
    assert [r.label() for r in requests] == ["FC04 0x0000+68", "FC04 0x0046+38", "FC04 0x00C8+52", "FC04 0x0156+40"]
    assert len(naive_plan(items)) == len(items) == 78
    # with no holes allowed, each contiguous run is a request
    assert len(plan(items, max_registers=80, max_gap=0)) > 4


def test_value_wider_than_max_registers_is_refused():
    with pytest.raises(PlanError, match="exceeds max_registers=2"):
        plan([Item(0, 3, 0, 4)], max_registers=2, max_gap=0)
