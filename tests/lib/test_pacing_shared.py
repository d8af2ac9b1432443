"""A connection's learned pace is one for every worker (in Redis where configured) and is
kept in the database, so a restart starts where the last sync or erasure left off."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from dashboard.lib import ratebudget
from dashboard.mirror import sync
from dashboard.models import Connection
from providers import RateBudget
from providers.fakes import ConvaiFake
from providers.fakes.convai import DEMO_KEY
from providers.http import HttpClient
from providers.pacing import AdaptiveBudget, Pace
from tests.providers.loopback import policy
from tests.services import Redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = Redis().start()
    try:
        yield server.url + "/0"
    finally:
        server.remove()


def _read_in_threads(url: str, budgets: Sequence[RateBudget], requests: int) -> None:
    """One thread with an event loop of its own per budget, as the worker processes of one
    connection have, each sending ``requests`` reads (a 429 is waited out and sent again)."""
    def worker(budget: RateBudget) -> None:
        async def main() -> None:
            async with HttpClient(url, label="Convai", budget=budget,
                                  policy=policy(backoff=0.01, retries=6),
                                  headers={"CONVAI-API-KEY": DEMO_KEY}) as client:
                for _ in range(requests):
                    await client.read("POST", "/character/list")

        asyncio.run(main())

    threads = [threading.Thread(target=worker, args=(b,)) for b in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def adaptive(settings):  # type: ignore[no-untyped-def]
    """No pinned rate: connections learn their pace."""
    settings.LETHE_PROVIDER_RATE = 0
    ratebudget.reset()
    yield
    ratebudget.reset()


def test_workers_in_one_process_draw_on_one_learned_pace(adaptive):
    key = str(uuid.uuid4())
    one, two = ratebudget.adaptive(key, 5.0), ratebudget.adaptive(key, 5.0)
    assert one is two
    assert ratebudget.adaptive(str(uuid.uuid4()), 5.0) is not one


def test_two_workers_sharing_redis_learn_from_each_others_answers(adaptive, settings,
                                                                 redis_url):
    settings.LETHE_REDIS_URL = redis_url
    key = str(uuid.uuid4())
    # Two budgets standing for two worker processes of the same connection.
    one, two = ratebudget.adaptive(key, 10.0), ratebudget.adaptive(key, 10.0)
    assert isinstance(one, ratebudget.SharedAdaptiveBudget) and one is not two
    assert one._take() == 0
    one.observe(one.pace.changed_at + 0.001, 429, {"retry-after": "3"}, 0.01)
    # The other worker paces by the cut and waits out the Retry-After too.
    assert two.pace.rate < 10.0 and two.pace.last_429 > 0
    assert two._take() > 2.0


@pytest.mark.parametrize("shared", ["in this process", "in Redis"])
def test_workers_on_a_rate_pinned_at_the_limit_never_send_more_than_it_in_a_second(
        settings, redis_url, shared, monkeypatch):
    """Granted up to EARLY before their slots, two workers' requests still go at most 20
    in any second on a rate pinned at 20, counted when each is granted. (Where they
    arrive, a loaded host may bunch two together: the pace's 3 % under the limit is for
    that, and a test counting arrivals failed now and then on a busy machine.)"""
    settings.LETHE_PROVIDER_RATE = 20
    settings.LETHE_REDIS_URL = redis_url if shared == "in Redis" else ""
    key = str(uuid.uuid4())
    budgets = [ratebudget.for_connection(key, 20) for _ in range(2)]
    assert (budgets[0] is budgets[1]) == (shared == "in this process")
    granted: list[float] = []
    for budget in {id(b): b for b in budgets}.values():
        take = budget._take

        def counted(take: Any = take) -> float:
            wait = take()
            if wait == 0.0:
                granted.append(time.monotonic())
            return float(wait)

        monkeypatch.setattr(budget, "_take", counted)
    fake = ConvaiFake(seed=3, characters=1, sessions=1, latency=0.002, retry_after=None)
    with fake.serve() as server:
        _read_in_threads(server.url, budgets, 30)
    granted.sort()
    assert len(granted) == 60
    busiest = max(sum(1 for t in granted[i:] if t < start + 1.0)
                  for i, start in enumerate(granted))
    assert busiest <= 20, busiest


def test_two_workers_sharing_redis_stay_under_a_limit_neither_was_told(adaptive, settings,
                                                                       redis_url):
    settings.LETHE_REDIS_URL = redis_url
    key = str(uuid.uuid4())
    fake = ConvaiFake(seed=3, characters=1, sessions=1, latency=0.002, rate_limit=30,
                      retry_after=None)
    budgets = [ratebudget.adaptive(key, 5.0) for _ in range(2)]
    with fake.serve() as server:
        _read_in_threads(server.url, budgets, 120)
    paces = [b.pace for b in budgets]
    assert paces[0] == paces[1]  # one pace, learned from both workers' answers
    assert fake.answered_429 > 0 and not paces[0].probing
    assert 30 * 0.5 <= paces[0].rate < 30 * 1.05  # under it, or just probing past it
    # Found, not hammered: a handful of the 240 requests were refused, each sent again.
    assert fake.answered_429 <= 10, fake.answered_429


# Transactional: a paced sync lasts long enough for its heartbeat thread to write the
# traffic counters on a connection of its own, which only a flush takes back.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_the_learned_pace_survives_a_restart(adaptive, settings, redis_url, shared,
                                             connection, convai_fake):
    if shared:
        settings.LETHE_REDIS_URL = redis_url
    convai_fake.fail_next(1, 429)  # the provider pushes back once during the sync
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == "ok", run.error
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.pace_rate and stored.pace_last_429_at is not None
    learned = stored.pace
    # A restart: every process forgets its budgets, and Redis (when used) its keys.
    ratebudget.reset()
    if shared:
        ratebudget._client(redis_url).flushdb()
    budget = Connection.objects.get(pk=connection.pk).budget()
    assert budget.pace.as_dict() == learned
    assert not budget.pace.probing  # it knows a limit was met, and starts under it


@pytest.mark.django_db
def test_a_pinned_rate_is_fixed_and_learns_nothing(settings, connection):
    settings.LETHE_PROVIDER_RATE = 7.0
    budget = connection.budget()
    assert not isinstance(budget, AdaptiveBudget)
    assert budget.rate == pytest.approx(7.0 * settings.LETHE_PROVIDER_PACE)
    connection.remember_pace(budget)
    assert Connection.objects.get(pk=connection.pk).pace == {}


def _refuse(budget: AdaptiveBudget, **headers: str) -> None:
    """A 429 to a request granted just now."""
    budget._take()
    budget.observe(time.time(), 429, headers, 0.01)


def test_a_shared_pace_gone_from_redis_still_learns(adaptive, settings, redis_url):
    settings.LETHE_REDIS_URL = redis_url
    key = str(uuid.uuid4())
    budget = ratebudget.adaptive(key, 10.0, learned=Pace(rate=10.0, probing=False, limit=10.0))
    budget._client.delete(f"lethe:pace:{key}")  # Redis restarted, evicted it, or it expired
    _refuse(budget)
    assert budget.pace.rate < 10.0
    assert budget._client.get(f"lethe:pace:{key}")  # and the cut is shared again


def test_a_lowered_ceiling_holds_for_a_pace_already_in_redis(adaptive, settings, redis_url):
    settings.LETHE_REDIS_URL = redis_url
    key = str(uuid.uuid4())
    learned = Pace(rate=50.0, probing=False, limit=50.0)
    ratebudget.adaptive(key, 50.0, learned=learned)
    capped = ratebudget.adaptive(key, 50.0, ceiling=5.0, learned=learned)
    assert capped.pace.rate <= 5.0 * settings.LETHE_PROVIDER_PACE


class _RedisAway:
    """A Redis client whose every call fails, as while the server is down."""

    def register_script(self, _: str) -> Any:
        return self._fail

    def __getattr__(self, _: str) -> Any:
        return self._fail

    @staticmethod
    def _fail(*_: Any, **__: Any) -> Any:
        raise ConnectionError("Redis is away")


def test_while_redis_is_away_a_retry_after_holds_and_a_cut_counts():
    budget = ratebudget.SharedAdaptiveBudget(_RedisAway(), "k", 10.0, ceiling=None,
                                             learned=Pace(rate=10.0, probing=False, limit=10.0),
                                             sharers=2)
    _refuse(budget, **{"retry-after": "30"})
    assert budget._take() > 29  # the provider's pause holds in this process
    assert budget.pace.rate < 10.0
    budget._hold = 0.0  # the pause over: this process paces at its share of the cut rate
    budget._take()
    assert budget._alone is not None and budget._alone.rate == budget.pace.rate / 2
