"""Sliding-window rate limit per device, on the monotonic clock."""

from __future__ import annotations

from collections import deque


class RateLimiter:
    def __init__(self, *, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Count one use of ``key`` if allowed; False (and nothing counted) when over the limit."""
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True
