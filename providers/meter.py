"""Counts of what one connection's clients sent: requests that left (retries included) and
the 429s that came back. Plain counters, no Django: the dashboard reads them to show a
sync's progress and to add them to the totals /metrics serves.

Counts only grow; ``take`` hands a reader what was added since its last take, so several
flushes of one meter never count a request twice."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0
    rate_limited: int = 0

    def __bool__(self) -> bool:
        return bool(self.requests or self.rate_limited)


class Meter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0
        self._taken = Counts()

    def sent(self, status: int | None) -> None:
        """One request left; ``status`` is the answer's (None when none came)."""
        with self._lock:
            self.requests += 1
            if status == 429:
                self.rate_limited += 1

    def total(self) -> Counts:
        with self._lock:
            return Counts(self.requests, self.rate_limited)

    def take(self) -> Counts:
        """What was counted since the previous take."""
        with self._lock:
            now = Counts(self.requests, self.rate_limited)
            new = Counts(now.requests - self._taken.requests,
                         now.rate_limited - self._taken.rate_limited)
            self._taken = now
            return new
