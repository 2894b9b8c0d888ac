"""Spam protection of public forms: a honeypot field and a per-client rate limit."""

from __future__ import annotations

import threading
import time
from collections import deque

from accord.core.errors import FieldProblem, InvalidInput, TooManyRequests

# A field people never see (hidden by CSS, skipped by screen readers) that bots fill in.
HONEYPOT_FIELD = "website"


def check_honeypot(value: str | None) -> None:
    if value:
        raise InvalidInput([FieldProblem(HONEYPOT_FIELD, "the spam check failed")])


class RateLimiter:
    """At most `limit` hits per key in any `window_seconds`; kept in this process's memory,
    so each server process counts on its own (documented in docs/leads.md)."""

    def __init__(self, *, limit: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                retry = max(1, int(hits[0] + self.window - now) + 1)
                raise TooManyRequests(
                    f"too many submissions from this address; try again in {retry} s", retry
                )
            hits.append(now)
            if len(self._hits) > self._max_keys:
                # Forget clients whose window has passed, so memory stays bounded.
                for stale in [
                    k for k, v in self._hits.items() if not v or v[-1] <= now - self.window
                ]:
                    del self._hits[stale]
