"""Adaptive pacing: a connection's rate learned from the provider's own answers.

Providers do not say what their limits are, so a fixed guess is either slow or rude. A
``Pace`` starts from the provider's initial rate and:

- raises it while answers come back clean: doubling per answer until the first sign of a
  limit, as TCP's slow start does, then (only while callers wait on the budget, so a
  connection held back by latency or idle never talks itself up to a rate it never tried)
  by 2 % of the limit it found per minute, so that it probes past that limit about once
  every minute and a half;
- cuts it on a 429, a ``Retry-After``, a rate-limit header saying nothing is left, or
  latency that climbs well above its usual level (a provider slowing down under load).
  A 429 cuts to just under the requests the provider saw in the second before it (what a
  provider counting arrivals per window counted, so the next probe starts close under its
  limit), a second one soon after settles just under what the provider took then, or, if
  it took far fewer than was sent, cuts harder; slowness cuts by a tenth;
- never goes above ``ceiling`` (a documented limit, or the operator's), nor below a floor.

An answer to a request granted before the last change says nothing about the new rate, so
it neither raises nor cuts again (the 429s of a burst in flight count as one). Every
function here is pure: the state lives in this process (``AdaptiveBudget``) or in Redis
(the dashboard's shared budget), which both apply the same rules.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from .http import EARLY, Held, RateBudget, parse_retry_after

FLOOR = 0.1  # requests/s: a provider refusing everything is still asked now and then
MAX_RATE = 1000.0  # beyond this a connection is bound by latency, not by its budget
# A 429 within this many seconds of the last one means the estimate was wrong: cut harder.
AGAIN_WITHIN = 10.0
HARD_CUT = 0.7
# A cut below this share of the pace means it ran well over the limit: wait out a window.
HARD_HOLD = 0.8
SLOW_CUT = 0.9
# After a 429, settle this share under what the provider counted, and climb back over a
# minute and a half, so probing costs fewer than one 429 a minute.
UNDER = 0.97
CLIMB_PER_MINUTE = (1 - UNDER) / 1.5  # back at the limit 90 s after settling under it
WINDOW = 1.0  # seconds: the window a provider most likely counts requests in
SLICE = 0.05  # seconds: the longest a waiting caller sleeps before it looks again
# Latency counts as climbing when its average is this far above the usual level.
# Generous on purpose: on a busy host Lethe's own event loop delays answers too, and that
# is no reason to slow the provider's traffic.
SLOW_FACTOR = 3.0
SLOW_MARGIN = 0.2  # seconds: jitter on a fast answer is not slowness
# A pace's times this far ahead of the clock reading them are not believed (the clock
# stepped back, or another host's runs ahead): they would have every answer ignored until
# then. Closer than this they are trusted, so that hosts a little apart agree.
FUTURE = 60.0


@dataclass(frozen=True)
class Pace:
    """One connection's learned pace. Times are wall-clock seconds (``time.time()``) so
    that processes sharing the state read them alike."""

    rate: float
    probing: bool = True  # still doubling: no limit met yet
    limit: float = 0.0  # what the provider last refused at (requests/s), 0 if never
    changed_at: float = 0.0  # when the rate last changed (raised or cut)
    cut_at: float = 0.0
    last_429: float = 0.0  # when the provider last refused: a 429, or headers (below)
    # What that refusal was: "429", or "headers" (rate-limit headers said nothing was left).
    refused_by: str = "429"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pace:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _trusted(pace: Pace, now: float) -> Pace:
    """``pace`` with the times it has from the future (beyond FUTURE) taken as long past."""
    late = now + FUTURE
    if max(pace.changed_at, pace.cut_at, pace.last_429) <= late:
        return pace

    def believed(moment: float) -> float:
        return 0.0 if moment > late else moment

    return replace(pace, changed_at=believed(pace.changed_at), cut_at=believed(pace.cut_at),
                   last_429=believed(pace.last_429))


def bounded(rate: float, ceiling: float | None) -> float:
    top = min(MAX_RATE, ceiling) if ceiling else MAX_RATE
    return max(FLOOR, min(top, rate))


def raised(pace: Pace, *, now: float, granted: float, ceiling: float | None,
           round_trip: float = 0.0) -> Pace | None:
    """The pace after a clean answer to a request granted at ``granted``, or None if it
    stays. Past probing, the caller raises only while requests wait on the budget."""
    pace = _trusted(pace, now)
    if granted < pace.changed_at:
        return None
    if pace.probing:
        # Doubling at most once an interval or a round trip, whichever is shorter: one
        # request after another doubles at each answer, while many answers in flight at
        # once do not compound into a leap far past the limit.
        if now - pace.changed_at < min(1.0 / pace.rate, round_trip):
            return None
        rate = pace.rate * 2
    else:
        # Time since the last change, capped: a pause in the work is no evidence.
        elapsed = min(2.0, max(0.0, now - pace.changed_at))
        rate = pace.rate + max(pace.limit, pace.rate) * CLIMB_PER_MINUTE * elapsed / 60
    rate = bounded(rate, ceiling)
    if rate <= pace.rate:
        return None
    return replace(pace, rate=rate, changed_at=now)


def refused(pace: Pace, *, now: float, granted: float, seen: int,
            ceiling: float | None, by: str = "429") -> Pace | None:
    """The pace after the provider refused a request (a 429, or said nothing is left):
    ``seen`` is how many requests of this connection the provider accepted in the second
    before it (the refused ones not counted): about its limit, if it counts per second."""
    pace = _trusted(pace, now)
    if granted < pace.cut_at:
        return None
    if pace.last_429 and now - pace.last_429 < AGAIN_WITHIN:
        if seen >= 2 and seen >= HARD_CUT * pace.rate:
            # It still took most of what was sent: the estimate was close (the second
            # counted at the first cut held one too many, or a request arriving late
            # bunched with the next, as on a busy host). Settle just under what it took.
            rate = min(UNDER * seen, pace.rate * UNDER)
        else:
            # It took far fewer: its window is longer than a second, or its limit fell.
            rate = pace.rate * HARD_CUT
    else:
        # Too few to measure by (a limit counted over a longer window): halve.
        rate = min(UNDER * seen, pace.rate * 0.9) if seen >= 2 else pace.rate / 2
    rate = bounded(rate, ceiling)
    return Pace(rate=rate, probing=False, limit=max(rate, float(seen)),
                changed_at=now, cut_at=now, last_429=now, refused_by=by)


def slowed(pace: Pace, *, now: float, granted: float, ceiling: float | None) -> Pace | None:
    """The pace after latency climbed: the provider is struggling, ease off by a tenth."""
    pace = _trusted(pace, now)
    if granted < pace.changed_at:
        return None
    rate = bounded(pace.rate * SLOW_CUT, ceiling)
    return replace(pace, rate=rate, probing=False, limit=max(pace.limit, rate),
                   changed_at=now, cut_at=now)


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def exhausted(headers: Mapping[str, str]) -> float | None:
    """Seconds until a provider's rate-limit headers let requests through again, when they
    say nothing is left in the window (``RateLimit-Remaining: 0`` or ``X-RateLimit-…``);
    None when they say nothing of the kind."""
    remaining = _header(headers, "ratelimit-remaining", "x-ratelimit-remaining")
    try:
        if remaining is None or not float(remaining) <= 0:  # NaN says nothing
            return None
    except ValueError:
        return None
    reset = _header(headers, "ratelimit-reset", "x-ratelimit-reset")
    try:
        seconds = float(reset) if reset is not None else 1.0
    except ValueError:
        return 1.0
    if seconds > 1e11:  # an epoch time in milliseconds
        seconds = seconds / 1000 - time.time()
    elif seconds > 1e9:  # an epoch time rather than a delta
        seconds -= time.time()
    return max(0.0, min(seconds, 60.0)) if seconds == seconds else 1.0


@dataclass
class Latency:
    """The average time an answer takes against its usual level: a moving average, and a
    baseline that follows it down at once but up only slowly. The first answer is left
    out: it carries the warm-up (the imports and connecting of a process's first request,
    hundreds of milliseconds), and as the baseline it would hide a provider slowing down
    from the start."""

    average: float = 0.0
    usual: float = 0.0
    samples: int = 0
    warmed: bool = False

    def add(self, seconds: float) -> None:
        if not self.warmed:
            self.warmed = True
            return
        if not self.samples:
            self.average = self.usual = seconds
        else:
            self.average += (seconds - self.average) * 0.2
            self.usual = min(self.average, self.usual + (self.average - self.usual) * 0.01)
        self.samples += 1

    @property
    def climbing(self) -> bool:
        return self.samples >= 10 and self.average > max(self.usual * SLOW_FACTOR,
                                                         self.usual + SLOW_MARGIN)

    @property
    def calm(self) -> bool:
        return self.average <= self.usual * 1.5 + 0.02


def retry_after(headers: Mapping[str, str]) -> float | None:
    return parse_retry_after(headers.get("retry-after"))


class AdaptiveBudget(RateBudget):
    """A budget whose rate follows the provider's answers (see the module's rules).

    Requests are granted one interval of the *current* rate after the last grant, so a
    raise takes effect at once. A ``Retry-After`` or an exhausted rate-limit header holds
    every request of the connection until it has passed, not just the one refused. The
    dashboard's Redis budget subclasses this and keeps ``pace``, the last grant, the hold
    and the grants of the last seconds in Redis instead."""

    def __init__(self, rate: float, *, ceiling: float | None = None,
                 learned: Pace | None = None) -> None:
        self.ceiling = ceiling
        start = learned or Pace(rate=rate)
        start = replace(start, rate=bounded(start.rate, ceiling))
        super().__init__(start.rate, 1)
        self._pace = start
        self._last = 0.0  # monotonic time of the last grant
        self._slot = 0.0  # the slot that grant was for (it may come up to EARLY before)
        self._answered = 0.0  # monotonic time of the last clean answer
        self._hold = 0.0  # monotonic: nothing is granted before it
        self._grants: collections.deque[float] = collections.deque()
        self._refusals: collections.deque[float] = collections.deque()
        # Wall time a caller last had to wait. Only a pace someone waited on since it was
        # last changed is raised: otherwise the budget is not what holds the work back.
        self._waited = 0.0
        self.latency = Latency()

    # -- the state, here or elsewhere -----------------------------------------------------

    @property
    def pace(self) -> Pace:
        return self._load()

    def _load(self) -> Pace:
        return self._pace

    def _store(self, old: Pace, new: Pace) -> bool:
        """Replace ``old`` by ``new``; False if someone else changed it meanwhile."""
        with self._lock:
            if self._pace != old:
                return False
            self._pace = new
            self.rate = new.rate
            return True

    def _seen(self) -> int:
        """Requests granted in the last second that were not refused: what the provider
        counted against its limit."""
        with self._lock:
            now = time.monotonic()
            for times in (self._grants, self._refusals):
                while times and times[0] < now - WINDOW:
                    times.popleft()
            return len(self._grants) - len(self._refusals)

    def _note_refusal(self) -> None:
        with self._lock:
            self._refusals.append(time.monotonic())

    def _hold_for(self, seconds: float) -> None:
        with self._lock:
            self._hold = max(self._hold, time.monotonic() + seconds)

    def _held(self) -> float:
        """Seconds the hold keeps every request back from now (0 when none)."""
        return max(0.0, self._hold - time.monotonic())

    def _released(self) -> bool:
        """Whether a clean answer came since the last grant while probing: then the next
        request may go at once, clocked by answers as TCP's slow start is, however low
        the rate still is (the rate catches up by doubling at each answer)."""
        return self._pace.probing and self._answered > self._last

    def _take(self) -> float:
        with self._lock:
            now = time.monotonic()
            due = max(self._slot + 1.0 / self._pace.rate, self._hold)
            if self._released():
                due = max(now, self._hold)
            if due - now > EARLY:
                return due - now - EARLY
            # The next slot is one interval after this one's, however early the waiter
            # woke for it; a late one moves it later.
            self._last, self._slot = now, max(now, due)
            self._grants.append(now)
            while self._grants[0] < now - 2.0:
                self._grants.popleft()
            return 0.0

    async def acquire(self, patience: float | None = None) -> None:
        while (wait := self._take()) > 0:
            if patience is not None and wait > patience and (held := self._held()) > patience:
                raise Held(held)
            self._waited = time.time()
            # In slices, so that a raise meanwhile lets the caller go early.
            await asyncio.sleep(min(wait, SLICE))

    # -- learning ---------------------------------------------------------------------------

    def observe(self, granted: float, status: int | None, headers: Mapping[str, str],
                elapsed: float) -> None:
        now = time.time()
        if status == 429:
            self._note_refusal()
            wait = retry_after(headers)
            change = self._change(lambda p: refused(p, now=now, granted=granted,
                                                    seen=self._seen(), ceiling=self.ceiling))
            # With no Retry-After, the refusal that ends the probing still holds everyone
            # for one window, so the provider's count forgets the burst before the new
            # pace is tried, and so does one that cuts hard (the pace was well over);
            # a near miss later, at about that pace, has no burst to wait out.
            if wait or (change is not None and (
                    change[0].probing or change[1].rate < change[0].rate * HARD_HOLD)):
                self._hold_for(wait or WINDOW)
            return
        if status is None or status >= 500:
            return  # the provider failing is not a statement about its rate
        wait = exhausted(headers)
        if wait is not None:
            self._hold_for(wait)
            self._change(lambda p: refused(p, now=now, granted=granted, seen=self._seen(),
                                           ceiling=self.ceiling, by="headers"))
            return
        self.latency.add(elapsed)
        self._answered = time.monotonic()
        if self.latency.climbing:
            self._change(lambda p: slowed(p, now=now, granted=granted, ceiling=self.ceiling))
        elif self.latency.calm and (self._pace.probing
                                    or self._waited > _trusted(self._pace, now).changed_at):
            self._change(lambda p: raised(p, now=now, granted=granted, ceiling=self.ceiling,
                                          round_trip=self.latency.usual))

    def _change(self, rule: Any) -> tuple[Pace, Pace] | None:
        """Apply ``rule`` to the pace: (the pace it replaced, the new one), or None if it
        changed none."""
        for _ in range(5):  # another worker may change the shared pace in between
            old = self._load()
            new = rule(old)
            if new is None:
                return None
            if self._store(old, new):
                return old, new
        return None
