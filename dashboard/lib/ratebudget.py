"""One rate budget per connection, shared by every worker that talks to its provider.

Providers count requests per key, not per worker, so the budget is keyed by connection:
in Redis when LETHE_REDIS_URL (or LETHE_CACHE_URL, when it names Redis) is set, so every
process shares it; otherwise in this process, shared by every thread and event loop in it.

Without a pinned rate (LETHE_PROVIDER_RATE) a connection's budget is adaptive: its pace is
learned from the provider's answers (providers/pacing.py) and shared the same way, in
Redis or in this process (``adaptive``). A pinned rate is a fixed budget (``for_connection``).

Requests are paced evenly at LETHE_PROVIDER_PACE of the limit (0.97) with no burst, and a
slot is granted only as a request is about to leave: a provider that counts arrivals in a
sliding window (the usual shape, and the fakes') then never sees more than its limit in any
window unless the network delays one request by more than the margin (about 30 ms a second
at 0.97; `make bench` drew no 429 with it, and 0.9 left a tenth of the budget unused).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

from django.conf import settings

from providers import RateBudget
from providers.http import EARLY
from providers.pacing import AdaptiveBudget, Pace, bounded

log = logging.getLogger(__name__)

_local: dict[tuple[str, float, int], RateBudget] = {}
_adaptive: dict[str, AdaptiveBudget] = {}
_lock = threading.Lock()
_clients: dict[str, Any] = {}

# Take a slot of a GCRA bucket if it conforms now (or within ARGV[3] seconds, providers.http
# EARLY): returns 0, or the seconds to wait before asking again (nothing taken then, so a
# late caller never squeezes the next one closer; never printed as 0, which means taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local early = tat - window - now
local slack = tonumber(ARGV[3])
if early > slack then return string.format('%.6f', math.max(early - slack, 0.000001)) end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX',
           math.ceil((next_tat - now) * 1000) + 1000)
return '0'
"""


def redis_url() -> str:
    url = settings.LETHE_REDIS_URL
    if not url:
        cache = os.environ.get("LETHE_CACHE_URL", "")
        url = cache if cache.startswith(("redis://", "rediss://", "unix://")) else ""
    return url


class RedisBudget(RateBudget):
    """A GCRA bucket in Redis: every process using the same key shares one pace.

    While Redis is away, each process paces on its own at a share of the rate: the rate
    divided by how many processes may call the connection at once (its erase workers and
    a sync), so that together they still stay under the provider's limit."""

    def __init__(self, client: Any, key: str, rate: float, burst: int = 1,
                 sharers: int = 1) -> None:
        super().__init__(rate, burst)
        self.key = key
        self._script = client.register_script(_TAKE)
        self._alone = RateBudget(rate / max(1, sharers), 1)
        self._away = False

    def _take(self) -> float:
        try:
            wait = float(self._script(keys=[self.key],
                                      args=[1.0 / self.rate, self.window, EARLY]))
        except Exception as exc:  # Redis away: a conservative share, rather than stop working
            if not self._away:
                log.warning("shared rate budget unavailable (%s); pacing this process at "
                            "%.2f requests/s until it is back", type(exc).__name__,
                            self._alone.rate)
                self._away = True
            return self._alone._take()
        self._away = False
        return wait


# The adaptive budget's take: one interval of the connection's current learned rate after
# the last grant's slot (at once if ARGV[2] is 1: an answer released it while probing; up
# to ARGV[3] seconds early, as in providers.http), and not before a hold (a Retry-After);
# a grant is remembered in a sorted set for a second or two, so a 429 can be set against
# what the provider counted.
_PACED_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local pace = redis.call('GET', KEYS[2])
if pace then rate = tonumber(cjson.decode(pace)['rate']) or rate end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local hold = tonumber(redis.call('GET', KEYS[3]) or '0')
local due = math.max(last + 1 / rate, hold)
if ARGV[2] == '1' then due = math.max(now, hold) end
local slack = tonumber(ARGV[3])
if due - now > slack then
  return string.format('%.6f', math.max(due - now - slack, 0.000001))
end
redis.call('SET', KEYS[1], string.format('%.6f', math.max(now, due)), 'PX',
           math.ceil(1000 / rate) + 1000)
local stamp = string.format('%.6f', now)
redis.call('ZADD', KEYS[4], now, stamp)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 2)
redis.call('PEXPIRE', KEYS[4], 3000)
return '0'
"""

# Requests granted in the last second less those refused, by Redis' clock (the one grants
# are stamped with); ARGV[1] = 1 first notes a refusal.
_SEEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[1] == '1' then
  redis.call('ZADD', KEYS[2], now, string.format('%.6f', now))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 2)
  redis.call('PEXPIRE', KEYS[2], 3000)
end
return redis.call('ZCOUNT', KEYS[1], now - 1, '+inf')
  - redis.call('ZCOUNT', KEYS[2], now - 1, '+inf')
"""

# Hold every grant until ARGV[1] seconds from now (a Retry-After), never shortening a hold.
_HOLD = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > hold then
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX',
             math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""

# Seconds the hold keeps every grant back from now (0 when none).
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
return string.format('%.6f', math.max(hold - now, 0))
"""

# Replace the learned pace only if it is still what the caller read (compare and set); a
# pace gone from Redis (restarted, evicted, expired) is replaced by the caller's.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

# The learned pace outlives any sync in Redis for this long; the database keeps it beyond.
PACE_TTL = 7 * 24 * 3600


class SharedAdaptiveBudget(AdaptiveBudget):
    """An adaptive budget whose pace, last grant, hold and recent grants live in Redis,
    so every worker process of a connection learns from, and paces by, the same answers.
    Each process still keeps its own view of latency and of whether it waits.

    While Redis is away, each process paces on its own at a share of its last known rate,
    as the fixed ``RedisBudget`` does."""

    def __init__(self, client: Any, key: str, rate: float, *, ceiling: float | None,
                 learned: Pace | None, sharers: int) -> None:
        super().__init__(rate, ceiling=ceiling, learned=learned)
        self.key = key
        self._keys = [f"lethe:last:{key}", f"lethe:pace:{key}", f"lethe:hold:{key}",
                      f"lethe:grants:{key}", f"lethe:refused:{key}"]
        self._client = client
        self._take_script = client.register_script(_PACED_TAKE)
        self._seen_script = client.register_script(_SEEN)
        self._hold_script = client.register_script(_HOLD)
        self._held_script = client.register_script(_HELD)
        self._swap_script = client.register_script(_SWAP)
        self._sharers = max(1, sharers)
        self._alone: RateBudget | None = None
        try:
            # The first process to open the connection brings what the database learned.
            client.set(self._keys[1], _encode(self._pace), nx=True, ex=PACE_TTL)
        except Exception:  # Redis away: the local pace serves until it is back
            log.warning("shared pace unavailable; pacing this process alone for now")
        # A ceiling lowered since the shared pace was learned holds from now on.
        self._change(lambda p: replace(p, rate=bounded(p.rate, ceiling))
                     if p.rate > bounded(p.rate, ceiling) else None)

    def _load(self) -> Pace:
        try:
            raw = self._client.get(self._keys[1])
        except Exception:
            return self._pace
        if raw:
            self._pace = Pace.from_dict(json.loads(raw))
            self.rate = self._pace.rate
        return self._pace

    def _store(self, old: Pace, new: Pace) -> bool:
        try:
            swapped = bool(self._swap_script(keys=[self._keys[1]],
                                             args=[_encode(old), _encode(new), PACE_TTL]))
        except Exception:
            return super()._store(old, new)
        if swapped:
            self._pace, self.rate = new, new.rate
        return swapped

    def _seen(self) -> int:
        try:
            return int(self._seen_script(keys=self._keys[3:], args=["0"]))
        except Exception:
            return super()._seen()

    def _note_refusal(self) -> None:
        super()._note_refusal()
        try:
            self._seen_script(keys=self._keys[3:], args=["1"])
        except Exception:
            log.debug("a refusal was not noted in the shared budget")

    def _hold_for(self, seconds: float) -> None:
        super()._hold_for(seconds)  # kept here too, for while Redis is away
        try:
            self._hold_script(keys=[self._keys[2]], args=[f"{seconds:.6f}"])
        except Exception:
            log.debug("a hold was kept in this process only")

    def _held(self) -> float:
        try:
            return float(self._held_script(keys=[self._keys[2]]))
        except Exception:
            return super()._held()

    def _take(self) -> float:
        try:
            released = self._released()
            wait = float(self._take_script(keys=self._keys[:4],
                                           args=[self._pace.rate, "1" if released else "0",
                                                 EARLY]))
            if wait == 0:
                self._last = time.monotonic()
        except Exception as exc:  # Redis away: a conservative share, rather than stop working
            share = self._pace.rate / self._sharers
            if self._alone is None:
                self._alone = RateBudget(share, 1)
                log.warning("shared rate budget unavailable (%s); pacing this process at "
                            "%.2f requests/s until it is back", type(exc).__name__, share)
            self._alone.rate = share  # what this process learns meanwhile still counts
            # A hold the provider asked for still holds (as far as this process knows).
            held = AdaptiveBudget._held(self)
            return held - EARLY if held > EARLY else self._alone._take()
        self._alone = None
        return wait


def _encode(pace: Pace) -> str:
    # One fixed spelling, so that compare-and-set compares like with like.
    return json.dumps(pace.as_dict(), sort_keys=True)


def _client(url: str) -> Any:
    with _lock:
        if url not in _clients:
            import redis

            _clients[url] = redis.Redis.from_url(url, socket_timeout=2,
                                                 socket_connect_timeout=2)
        return _clients[url]


def for_connection(key: str, rate: float, burst: int = 1, *, pace: float | None = None
                   ) -> RateBudget:
    """The fixed budget every worker of connection ``key`` shares, paced at ``pace`` ×
    ``rate``: for a rate the operator pinned (LETHE_PROVIDER_RATE)."""
    paced = rate * (settings.LETHE_PROVIDER_PACE if pace is None else pace)
    url = redis_url()
    if url:
        # Its erase workers and a sync may call one connection at once.
        return RedisBudget(_client(url), f"lethe:budget:{key}", paced, burst,
                           sharers=settings.LETHE_ERASE_WORKERS + 1)
    with _lock:
        budget = _local.get((key, paced, burst))
        if budget is None:
            budget = _local[(key, paced, burst)] = RateBudget(paced, burst)
        return budget


def adaptive(key: str, rate: float, *, ceiling: float | None = None,
             learned: Pace | None = None) -> AdaptiveBudget:
    """The adaptive budget every worker of connection ``key`` shares: starting from what
    was ``learned`` before (else ``rate``), never above ``ceiling`` (paced at
    LETHE_PROVIDER_PACE of it, as a pinned rate is)."""
    if ceiling:
        ceiling *= settings.LETHE_PROVIDER_PACE
    url = redis_url()
    if url:
        return SharedAdaptiveBudget(_client(url), key, rate, ceiling=ceiling, learned=learned,
                                    sharers=settings.LETHE_ERASE_WORKERS + 1)
    with _lock:
        budget = _adaptive.get(key)
        if budget is None or budget.ceiling != ceiling:
            budget = _adaptive[key] = AdaptiveBudget(rate, ceiling=ceiling, learned=learned)
        return budget


def reset() -> None:
    """Forget the in-process budgets (tests)."""
    with _lock:
        _local.clear()
        _adaptive.clear()
