"""Map a node's monotonic milliseconds to UTC from round-trip-compensated time-sync exchanges.

Every exchange is checked against the ones before it. Within an *epoch* the node clock runs at one
steady rate (measured, so a slow RC oscillator is followed); a sync that contradicts the epoch's
rate by more than the exchanges' error bounds is a clock jump or a drift change: a new epoch starts
there. A reading is placed by interpolating between the syncs around it, so its time is only given
once a sync *after* it has confirmed the clock (:meth:`TimeMap.place` returns None until then).
A reading that falls between two epochs cannot be placed with certainty and comes back uncertain.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

DRIFT_PPM = 200.0  # rate wander allowed within an epoch (crystal ~50 ppm; a steady RC error is measured)
RESOLUTION_MS = 1.0  # the node's tick
MIN_RATE, MAX_RATE = 0.2, 5.0  # node ms per gateway ms a node clock may plausibly run at


@dataclass(frozen=True, slots=True)
class SyncSample:
    node_ms: int  # node clock when it answered
    utc_ms: float  # gateway UTC at the midpoint of the exchange
    half_rtt_ms: float
    taken_mono: float  # gateway monotonic seconds at the midpoint


@dataclass(frozen=True, slots=True)
class Placed:
    ts_ms: int
    error_ms: float
    certain: bool  # False: a clock jump or drift change lies around this reading; ts is a best guess


def wrap_delta(a: int, b: int) -> int:
    """a - b for 32-bit wrapping millisecond counters (|difference| < 2^31)."""
    return ((a - b + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


class TimeMap:
    def __init__(self, keep: int = 16):
        self.samples: deque[SyncSample] = deque(maxlen=keep)  # the current epoch, oldest first
        self.rate = 1.0  # node ms per gateway ms in the current epoch
        self.rate_unc = 0.0  # uncertainty of ``rate`` (beyond DRIFT_PPM)
        self.before: SyncSample | None = None  # last sync of the previous epoch
        self.jumps = 0  # epochs started by a contradicting sync

    # -- learning ------------------------------------------------------------------------------
    def add(self, *, sent_mono: float, sent_utc_ms: float, recv_mono: float, node_ms: int) -> bool:
        """Record an exchange; False when it contradicts the epoch (a jump or drift change: new epoch)."""
        rtt_ms = max(0.0, (recv_mono - sent_mono) * 1000.0)
        s = SyncSample(node_ms, sent_utc_ms + rtt_ms / 2, rtt_ms / 2, (sent_mono + recv_mono) / 2)
        last = self.samples[-1] if self.samples else None
        if last is None:
            self.samples.append(s)
            return True
        du = (s.taken_mono - last.taken_mono) * 1000.0
        dn = wrap_delta(s.node_ms, last.node_ms)
        if dn >= 0 and abs(dn - du * self.rate) <= self._tolerance(last, s, du):
            self.samples.append(s)
            self._measure_rate()
            return True
        # contradiction: start a new epoch at s, carrying the rate just seen when it is plausible
        self.jumps += 1
        self.before = last
        seg = dn / du if du > 0 else 0.0
        if MIN_RATE <= seg <= MAX_RATE and abs(seg - 1.0) > 1e-3:
            self.rate, self.rate_unc = seg, (last.half_rtt_ms + s.half_rtt_ms + 2 * RESOLUTION_MS) / du
        else:
            self.rate, self.rate_unc = 1.0, 0.0
        self.samples.clear()
        self.samples.append(s)
        return False

    def _tolerance(self, a: SyncSample, b: SyncSample, du: float) -> float:
        return a.half_rtt_ms + b.half_rtt_ms + 2 * RESOLUTION_MS + du * (DRIFT_PPM * 1e-6 + self.rate_unc)

    def _measure_rate(self) -> None:
        first, last = self.samples[0], self.samples[-1]
        du = (last.taken_mono - first.taken_mono) * 1000.0
        if du <= 0:
            return
        unc = (first.half_rtt_ms + last.half_rtt_ms + 2 * RESOLUTION_MS) / du
        if unc < self.rate_unc or unc < 1e-4:  # a better measurement, or a good one (a long baseline)
            self.rate, self.rate_unc = wrap_delta(last.node_ms, first.node_ms) / du, unc

    # -- using ---------------------------------------------------------------------------------
    def error_ms(self, now_mono: float) -> float | None:
        """Error bound (ms) of a reading taken now, once the next sync confirms it; None before any sync."""
        if not self.samples:
            return None
        per_ms = DRIFT_PPM * 1e-6 + self.rate_unc
        return RESOLUTION_MS + min(s.half_rtt_ms + max(0.0, now_mono - s.taken_mono) * 1000.0 * per_ms for s in self.samples)

    @property
    def rate_ppm(self) -> float:
        """How far the node clock's measured rate is from the gateway's (ppm; negative = slow)."""
        return (self.rate - 1.0) * 1e6

    def newer_than_last_sync(self, node_ms: int) -> bool:
        return bool(self.samples) and wrap_delta(node_ms, self.samples[-1].node_ms) > 0

    def plausible_now(self, node_ms: int, now_mono: float) -> bool:
        """A frame just received: is its node time possible given the last sync (not in the future)?"""
        if not self.samples:
            return True
        s = self.samples[-1]
        du = (now_mono - s.taken_mono) * 1000.0
        ahead = wrap_delta(node_ms, s.node_ms) - du * self.rate
        return ahead <= s.half_rtt_ms + 2 * RESOLUTION_MS + abs(du) * (DRIFT_PPM * 1e-6 + self.rate_unc)

    def place(self, node_ms: int, recv_mono: float | None = None) -> Placed | None:
        """UTC of a reading stamped ``node_ms`` (received at ``recv_mono``); None while no sync after
        it has confirmed the clock."""
        if not self.samples:
            return None
        first, last = self.samples[0], self.samples[-1]
        if wrap_delta(node_ms, last.node_ms) > 0:
            return None
        if wrap_delta(node_ms, first.node_ms) < 0:
            return self._before_epoch(node_ms, first, recv_mono)
        # any sync of the epoch maps it (one steady rate); take the one with the smallest bound
        best, err = first, float("inf")
        for s in self.samples:
            e = s.half_rtt_ms + abs(wrap_delta(node_ms, s.node_ms)) * (DRIFT_PPM * 1e-6 + self.rate_unc)
            if e < err:
                best, err = s, e
        return Placed(round(best.utc_ms + wrap_delta(node_ms, best.node_ms) / self.rate), err + RESOLUTION_MS, True)

    def extrapolate(self, node_ms: int) -> Placed | None:
        """Place a reading newer than the last sync when no later sync will come (the node rebooted)."""
        if not self.samples:
            return None
        s = self.samples[-1]
        d = wrap_delta(node_ms, s.node_ms)
        if d <= 0:
            return self.place(node_ms)
        err = s.half_rtt_ms + RESOLUTION_MS + d * (DRIFT_PPM * 1e-6 + self.rate_unc)
        return Placed(round(s.utc_ms + d / self.rate), err, True)

    def _guess(self, candidates: list[float], recv_mono: float | None) -> float:
        """The latest candidate time that is not after the reading was received (else the earliest)."""
        if recv_mono is None:
            return candidates[0]
        s = self.samples[-1]
        recv_utc = s.utc_ms + (recv_mono - s.taken_mono) * 1000.0
        ok = [t for t in candidates if t <= recv_utc + s.half_rtt_ms + 50.0]
        return max(ok) if ok else min(candidates)

    def _before_epoch(self, node_ms: int, first: SyncSample, recv_mono: float | None) -> Placed:
        d = wrap_delta(node_ms, first.node_ms)
        ts = first.utc_ms + d / self.rate
        b = self.before
        if b is None:  # no jump seen: the clock is trusted backwards, with the drift bound
            return Placed(round(ts), first.half_rtt_ms + RESOLUTION_MS + abs(d) * (DRIFT_PPM * 1e-6 + self.rate_unc), True)
        # between two epochs: the node clock jumped or changed rate somewhere here. The reading is
        # on the old epoch or on the new one: the later of the two that is not after its receipt.
        span = first.utc_ms - b.utc_ms
        ts = self._guess([ts, b.utc_ms + wrap_delta(node_ms, b.node_ms)], recv_mono)
        return Placed(round(ts), max(span, 1.0), False)

    def force(self, node_ms: int, recv_mono: float | None = None) -> Placed | None:
        """Place a reading that a later sync should have confirmed but did not (it lies beyond that
        sync on the node clock: the clock went backwards after it). Uncertain, best guess."""
        b = self.before or (self.samples[-1] if self.samples else None)
        if b is None:
            return None
        d = wrap_delta(node_ms, b.node_ms)
        first = self.samples[0] if self.samples else b
        ts = self._guess([b.utc_ms + d, first.utc_ms + wrap_delta(node_ms, first.node_ms) / self.rate], recv_mono)
        return Placed(round(ts), max(abs(d), 1.0), False)
