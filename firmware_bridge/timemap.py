"""Map a node's monotonic milliseconds to UTC from round-trip-compensated time-sync exchanges."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

DRIFT_PPM = 200.0  # assumed worst-case oscillator drift of a node (crystal ~50 ppm, RC oscillators worse)
RESOLUTION_MS = 1.0  # the node's tick


@dataclass(frozen=True, slots=True)
class SyncSample:
    node_ms: int  # node clock when it answered
    utc_ms: float  # gateway UTC at the midpoint of the exchange
    half_rtt_ms: float
    taken_mono: float  # gateway monotonic seconds when it was taken


def wrap_delta(a: int, b: int) -> int:
    """a - b for 32-bit wrapping millisecond counters (|difference| < 2^31)."""
    return ((a - b + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


class TimeMap:
    """Keeps the last few exchanges and maps with the one whose error bound is smallest now."""

    def __init__(self, keep: int = 8):
        self.samples: deque[SyncSample] = deque(maxlen=keep)

    def add(self, *, sent_mono: float, sent_utc_ms: float, recv_mono: float, node_ms: int) -> SyncSample:
        rtt_ms = max(0.0, (recv_mono - sent_mono) * 1000.0)
        s = SyncSample(node_ms, sent_utc_ms + rtt_ms / 2, rtt_ms / 2, recv_mono)
        self.samples.append(s)
        return s

    def _error(self, s: SyncSample, now_mono: float) -> float:
        return s.half_rtt_ms + RESOLUTION_MS + (now_mono - s.taken_mono) * 1000.0 * DRIFT_PPM * 1e-6

    def best(self, now_mono: float) -> SyncSample | None:
        return min(self.samples, key=lambda s: self._error(s, now_mono), default=None)

    def error_ms(self, now_mono: float) -> float | None:
        """Current error bound of the mapping (ms), or None before the first exchange."""
        s = self.best(now_mono)
        return None if s is None else self._error(s, now_mono)

    def to_utc_ms(self, node_ms: int, now_mono: float) -> int | None:
        s = self.best(now_mono)
        if s is None:
            return None
        return round(s.utc_ms + wrap_delta(node_ms, s.node_ms))
