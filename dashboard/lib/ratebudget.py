"""One rate budget per connection, shared by every worker that talks to its provider.

Providers count requests per key, not per worker, so the budget is keyed by connection:
in Redis when LETHE_REDIS_URL (or LETHE_CACHE_URL, when it names Redis) is set, so every
process shares it; otherwise in this process, shared by every thread and event loop in it.

Requests are paced evenly at LETHE_PROVIDER_PACE of the limit (0.97) with no burst, and a
slot is granted only as a request is about to leave: a provider that counts arrivals in a
sliding window (the usual shape, and the fakes') then never sees more than its limit in any
window unless the network delays one request by more than the margin (about 30 ms a second
at 0.97; `make bench` drew no 429 with it, and 0.9 left a tenth of the budget unused).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings

from providers import RateBudget

log = logging.getLogger(__name__)

_local: dict[tuple[str, float, int], RateBudget] = {}
_lock = threading.Lock()
_clients: dict[str, Any] = {}

# Take a slot of a GCRA bucket if it conforms now: returns 0, or the seconds to wait before
# asking again (nothing taken then, so a late caller never squeezes the next one closer).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local early = tat - window - now
if early > 0.000001 then return string.format('%.6f', early) end
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
            wait = float(self._script(keys=[self.key], args=[1.0 / self.rate, self.window]))
        except Exception as exc:  # Redis away: a conservative share, rather than stop working
            if not self._away:
                log.warning("shared rate budget unavailable (%s); pacing this process at "
                            "%.2f requests/s until it is back", type(exc).__name__,
                            self._alone.rate)
                self._away = True
            return self._alone._take()
        self._away = False
        return wait


def _client(url: str) -> Any:
    with _lock:
        if url not in _clients:
            import redis

            _clients[url] = redis.Redis.from_url(url, socket_timeout=2,
                                                 socket_connect_timeout=2)
        return _clients[url]


def for_connection(key: str, rate: float, burst: int = 1, *, pace: float | None = None
                   ) -> RateBudget:
    """The budget every worker of connection ``key`` shares, paced at ``pace`` × ``rate``."""
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


def reset() -> None:
    """Forget the in-process budgets (tests)."""
    with _lock:
        _local.clear()
