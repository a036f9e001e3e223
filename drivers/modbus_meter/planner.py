"""Request planning: cover a device's registers with the fewest Modbus reads.

Registers of one function code are sorted by address; a request reads one contiguous range.
A request is allowed when its span is at most ``max_registers`` and no hole between the
registers it serves exceeds ``max_gap`` (some devices refuse reads over unmapped addresses).
Feasibility is closed under taking contiguous sub-runs, so an optimal plan consists of
contiguous runs of the sorted list; a dynamic programme over run boundaries finds the plan
with the fewest requests and, among those, the fewest registers on the wire. O(n^2) per
function code; n is at most a few hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Item:
    """A value to fetch: ``count`` registers at ``address`` read with ``fc``; ``key`` is opaque."""

    key: int
    fc: int
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Request:
    fc: int
    address: int
    count: int
    items: tuple[Item, ...]

    def label(self) -> str:
        return f"FC{self.fc:02d} 0x{self.address:04X}+{self.count}"


class PlanError(ValueError):
    pass


def _run_ok(items: Sequence[Item], i: int, j: int, max_registers: int, max_gap: int) -> int | None:
    """Span of items[i..j] (inclusive) if they fit one request, else None."""
    start = items[i].address
    end = items[i].end
    for k in range(i + 1, j + 1):
        if items[k].address - end > max_gap:
            return None
        end = max(end, items[k].end)
    span = end - start
    return span if span <= max_registers else None


def plan(items: Sequence[Item], *, max_registers: int, max_gap: int) -> list[Request]:
    """The optimal plan (fewest requests, then fewest registers), ordered by fc and address.
    Plans are remembered: a site's meters of one profile share one (the programme is cubic in the
    worst case and ran once per meter at start-up)."""
    return list(_plan(tuple(items), max_registers, max_gap))


@lru_cache(maxsize=64)
def _plan(items: tuple[Item, ...], max_registers: int, max_gap: int) -> tuple[Request, ...]:
    out: list[Request] = []
    for fc in sorted({it.fc for it in items}):
        group = sorted((it for it in items if it.fc == fc), key=lambda it: (it.address, it.count, it.key))
        for it in group:
            if it.count > max_registers:
                raise PlanError(f"a {it.count}-register value at {it.address} exceeds max_registers={max_registers}")
        out.extend(_plan_group(fc, group, max_registers, max_gap))
    return tuple(out)


def _plan_group(fc: int, items: list[Item], max_registers: int, max_gap: int) -> list[Request]:
    n = len(items)
    inf = (1 << 30, 1 << 30)
    best: list[tuple[int, int]] = [(0, 0)] + [inf] * n  # best[j]: cost of covering items[:j]
    prev = [0] * (n + 1)
    for j in range(1, n + 1):
        # runs items[i..j-1]; walk i downwards, stop once the span alone is too large
        for i in range(j - 1, -1, -1):
            if items[j - 1].end - items[i].address > max_registers:
                break  # spans only grow as i moves down
            span = _run_ok(items, i, j - 1, max_registers, max_gap)
            if span is None:
                continue
            cand = (best[i][0] + 1, best[i][1] + span)
            if cand < best[j]:
                best[j], prev[j] = cand, i
    runs = []
    j = n
    while j > 0:
        i = prev[j]
        run = items[i:j]
        start, end = run[0].address, max(it.end for it in run)
        runs.append(Request(fc, start, end - start, tuple(run)))
        j = i
    return runs[::-1]


def naive_plan(items: Sequence[Item]) -> list[Request]:
    """One request per value (what many integrations do)."""
    return [Request(it.fc, it.address, it.count, (it,)) for it in sorted(items, key=lambda it: (it.fc, it.address))]


def frame_bytes(requests: Sequence[Request]) -> int:
    """RTU bytes on the wire per cycle: 8-byte request + (5 + 2N)-byte reply per read."""
    return sum(8 + 5 + 2 * r.count for r in requests)


def wire_time(requests: Sequence[Request], *, baudrate: int, bits_per_char: int) -> float:
    """T = sum over requests of (20 + 2N) * bits_per_char / baud (request, reply and two t3.5 gaps)."""
    return sum((20 + 2 * r.count) * bits_per_char / baudrate for r in requests)
