"""Logins for the web page: sessions, CSRF tokens and a login rate limit, in memory.

A session is a random id in an HttpOnly, SameSite=Strict cookie; each session has its own CSRF token,
which every write must echo in the ``X-CSRF-Token`` header. :meth:`Sessions.authorise` is the one
check every mutating route goes through.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .http import HttpError, Request

COOKIE = "ea_session"
CSRF_HEADER = "x-csrf-token"
LOGIN_ATTEMPTS = 5  # failed logins allowed per LOGIN_WINDOW_S, per client address and in total x 4
LOGIN_WINDOW_S = 60.0
MAX_SESSIONS = 16


@dataclass
class Session:
    id: str
    csrf: str
    expires: float


class LoginLimiter:
    """Failed logins per client address and in total within a sliding window."""

    def __init__(self, *, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW_S):
        self.attempts, self.window = attempts, window
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, peer: str, now: float) -> float:
        """Seconds until ``peer`` may try again (0: now)."""
        waits = []
        for key, limit in ((peer, self.attempts), ("*", 4 * self.attempts)):
            q = self._recent(key, now)
            if len(q) >= limit:
                waits.append(q[0] + self.window - now)
        return max(waits, default=0.0)

    def failed(self, peer: str, now: float) -> None:
        for key in (peer, "*"):
            self._recent(key, now).append(now)
        if len(self._fails) > 1024:  # many addresses: forget the ones with nothing recent
            for key in [k for k, q in self._fails.items() if not self._recent(k, now)]:
                del self._fails[key]


class Sessions:
    def __init__(self, *, lifetime_s: float, monotonic: Callable[[], float] = time.monotonic):
        self.lifetime_s = lifetime_s
        self.monotonic = monotonic
        self._by_id: dict[str, Session] = {}
        self.limiter = LoginLimiter()

    def create(self) -> Session:
        now = self.monotonic()
        for sid in [s.id for s in self._by_id.values() if s.expires <= now]:
            del self._by_id[sid]
        while len(self._by_id) >= MAX_SESSIONS:  # the oldest login goes
            del self._by_id[min(self._by_id.values(), key=lambda s: s.expires).id]
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.lifetime_s)
        self._by_id[s.id] = s
        return s

    def current(self, req: Request) -> Session | None:
        """The request's live session (its lifetime renewed), or None."""
        sid = req.cookie(COOKIE)
        s = self._by_id.get(sid) if sid else None
        now = self.monotonic()
        if s is None or s.expires <= now:
            return None
        s.expires = now + self.lifetime_s
        return s

    def end(self, req: Request) -> None:
        sid = req.cookie(COOKIE)
        if sid:
            self._by_id.pop(sid, None)

    def authorise(self, req: Request) -> Session:
        """The one check of every mutating route: a live session and its CSRF token. Raises HttpError."""
        s = self.current(req)
        if s is None:
            raise HttpError(401, "log in first")
        token = req.headers.get(CSRF_HEADER, "")
        if not token or not hmac.compare_digest(token.encode(), s.csrf.encode()):
            raise HttpError(403, "missing or wrong CSRF token")
        return s

    @staticmethod
    def cookie(s: Session | None, lifetime_s: float) -> str:
        if s is None:
            return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        return f"{COOKIE}={s.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(lifetime_s)}"
