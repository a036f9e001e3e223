"""Messages held in memory while the outbox cannot store them (disk full, database locked).

Held messages keep their commit order: they are committed oldest first, before anything newer, so the
seqs they get at commit time follow reading order. Memory is bounded by ``max_bytes`` of encoded JSON;
past it the same priority eviction as the outbox's disk cap applies (oldest raw telemetry first, then
aggregates, events and audit records last) and the caller counts what was evicted as drops.

Bodies are kept encoded (compact bytes, not Python dicts) and decoded again only a chunk at a time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

import orjson

from agent.store.clockhold import ClockHold
from agent.store.outbox import Pending, Priority

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY
_ENTRY_OVERHEAD = 120  # bytes an entry costs beyond its payload (tuple, bytes header, deque slot)
DEFAULT_FRACTION = 32  # hold at most 1/32 of the outbox's disk cap ...
MIN_HOLD_BYTES, MAX_HOLD_BYTES = 1024 * 1024, 8 * 1024 * 1024  # ... but 1 to 8 MiB


def hold_bytes_for(outbox_max_bytes: int) -> int:
    """The in-memory hold derived from the outbox cap (8 MiB with the default 256 MiB cap)."""
    return max(MIN_HOLD_BYTES, min(MAX_HOLD_BYTES, outbox_max_bytes // DEFAULT_FRACTION))


class Held(NamedTuple):
    order: int  # commit order
    priority: Priority
    topic: str
    payload: bytes  # the body without ``gateway``, ``stream``, ``seq`` (the outbox sets those when committing)
    readings: int = 0
    hold: ClockHold | None = None  # the clock stamp it is committed with (store.clockhold)

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic) + _ENTRY_OVERHEAD

    def pending(self) -> Pending:
        return Pending(self.priority, self.topic, orjson.loads(self.payload), self.readings, self.hold)


class HeldMessages:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._queues: dict[Priority, deque[Held]] = {p: deque() for p in Priority}
        self._next = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, messages: Iterable[Pending]) -> tuple[dict[Priority, int], list[str]]:
        """Hold messages after everything held already. Returns what had to be evicted to stay under
        the cap (per priority) and a description of each message that cannot be encoded (dropped)."""
        malformed: list[str] = []
        for message in messages:
            try:
                priority, topic, body, readings, hold = Pending(*message)
                body = dict(body)
                body.pop("gateway", None)  # set by an earlier failed attempt; the outbox sets both again
                body.pop("seq", None)
                body.pop("stream", None)
                entry = Held(self._next, Priority(priority), topic, orjson.dumps(body, option=_ORJSON_OPTS),
                             int(readings), hold)
            except (TypeError, ValueError, IndexError) as e:
                malformed.append(f"{message!r:.200}: {e}")
                continue
            self._next += 1
            self._queues[entry.priority].append(entry)
            self.bytes += entry.size
        return self._evict(), malformed

    def _evict(self) -> dict[Priority, int]:
        evicted: dict[Priority, int] = {}
        for priority in Priority:
            queue = self._queues[priority]
            while self.bytes > self.max_bytes and queue:
                self.bytes -= queue.popleft().size
                evicted[priority] = evicted.get(priority, 0) + 1
        return evicted

    def oldest(self, max_bytes: int) -> list[Held]:
        """The oldest held messages, in commit order, up to about ``max_bytes`` (at least one); they
        stay held until :meth:`release`. Committing in such chunks bounds the memory a commit takes."""
        heads = (iter(q) for q in self._queues.values() if q)
        out: list[Held] = []
        size = 0
        for entry in heapq.merge(*heads):
            if out and size + entry.size > max_bytes:
                break
            out.append(entry)
            size += entry.size
        return out

    def release(self, entries: Iterable[Held]) -> None:
        """Forget entries (committed, or dropped as malformed)."""
        for entry in entries:
            queue = self._queues[entry.priority]
            if queue and queue[0] is entry:
                queue.popleft()
            else:
                queue.remove(entry)
            self.bytes -= entry.size
