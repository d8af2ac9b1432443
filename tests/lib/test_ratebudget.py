"""One rate budget per connection, shared by every worker: in-process, or in Redis."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable

import pytest

from dashboard.lib import ratebudget
from dashboard.models import Connection
from providers import RateBudget, http, pacing
from providers.http import EARLY
from providers.pacing import AdaptiveBudget, Pace


def test_workers_of_one_connection_share_one_budget_and_others_get_their_own():
    key, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = ratebudget.for_connection(key, 10)
    assert ratebudget.for_connection(key, 10) is first
    assert ratebudget.for_connection(other, 10) is not first


def test_requests_are_paced_evenly_below_the_limit_with_no_burst(settings):
    budget = ratebudget.for_connection(str(uuid.uuid4()), 10)
    assert budget.rate == pytest.approx(10 * settings.LETHE_PROVIDER_PACE)
    assert budget.burst == 1
    interval = 1 / budget.rate
    assert budget._take() == 0  # a slot: go
    # The next one must wait about one interval, and asking again takes nothing.
    assert budget._take() == pytest.approx(interval, abs=0.01)
    assert budget._take() == pytest.approx(interval, abs=0.01)


def test_a_request_granted_late_pushes_the_next_one_back_instead_of_squeezing_it():
    budget = RateBudget(rate=20)  # one slot every 50 ms
    assert budget._take() == 0
    time.sleep(0.08)  # this caller woke 30 ms after its slot was due
    assert budget._take() == 0
    # Reserving ahead would have allowed the next request 20 ms from now; it gets 50 ms.
    assert budget._take() == pytest.approx(0.05, abs=0.01)


class Clock:
    """Monotonic time the test sets: each budget's grants, exactly."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    time = staticmethod(time.time)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(http, "time", fake)
    monkeypatch.setattr(pacing, "time", fake)
    return fake


@pytest.mark.parametrize("budget", [
    lambda: RateBudget(rate=10),
    lambda: AdaptiveBudget(10.0, learned=Pace(rate=10.0, probing=False)),
], ids=["fixed", "adaptive"])
def test_a_waiter_woken_just_before_its_slot_is_granted_and_the_slots_keep_their_grid(
        clock: Clock, budget: Callable[[], RateBudget]) -> None:
    # asyncio wakes a sleeper up to a millisecond late, so a waiter is told to wake EARLY
    # before its slot and is granted then; the slot after it still comes one interval on.
    paced = budget()  # slots 100 ms apart
    assert paced._take() == 0  # the slot at 100.0
    assert paced._take() == pytest.approx(0.1 - EARLY, abs=1e-9)  # wake before 100.1
    clock.now = 100.1 - EARLY / 2
    assert paced._take() == 0  # granted half a millisecond early
    # The next slot is at 100.2, not one interval after the moment granted.
    assert paced._take() == pytest.approx(100.2 - clock.now - EARLY, abs=1e-9)
    clock.now = 100.203  # this waiter woke 3 ms late: granted, and the next slot moves later
    assert paced._take() == 0
    assert paced._take() == pytest.approx(0.1 - EARLY, abs=1e-9)


def test_waiters_on_one_budget_never_go_out_together():
    budget = RateBudget(rate=50)
    granted: list[float] = []

    async def worker() -> None:
        for _ in range(5):
            await budget.acquire()
            granted.append(time.monotonic())

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(3)))

    asyncio.run(main())
    gaps = [b - a for a, b in zip(granted, granted[1:], strict=False)]
    assert len(granted) == 15
    # One interval apart, less EARLY; the times are read after each waiter resumes, which
    # a busy machine may shift by a few milliseconds (the exact grid is tested above).
    assert min(gaps) >= 0.02 - EARLY - 0.005


@pytest.mark.django_db
def test_every_provider_a_connection_opens_draws_on_the_same_budget(connection: Connection):
    assert connection.open_provider().budget is connection.open_provider().budget


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_with_redis_configured_separate_processes_share_the_schedule(settings):
    settings.LETHE_REDIS_URL = "redis://127.0.0.1:6379/15"
    key = f"test-{uuid.uuid4()}"
    # Two budgets standing for two worker processes of the same connection.
    one = ratebudget.for_connection(key, 10)
    two = ratebudget.for_connection(key, 10)
    assert isinstance(one, ratebudget.RedisBudget) and one is not two
    assert one._take() == pytest.approx(0, abs=0.01)
    # The other process must wait for the slot the first one took.
    interval = 1 / (10 * settings.LETHE_PROVIDER_PACE)
    wait = two._take()
    assert wait == pytest.approx(interval - EARLY, abs=0.02)
    time.sleep(wait)  # told to wake just before the slot, as in-process (EARLY)
    assert two._take() == 0
    assert one._take() == pytest.approx(interval, abs=0.02)


def test_an_unreachable_redis_falls_back_to_a_share_of_the_budget(settings):
    settings.LETHE_REDIS_URL = "redis://127.0.0.1:9/0"
    settings.LETHE_ERASE_WORKERS = 2
    budget = ratebudget.for_connection(f"test-{uuid.uuid4()}", 10)
    assert budget._take() == 0  # no exception: paced locally instead...
    # ...at a third of the rate (two erase workers and a sync may share the connection),
    # so that together they stay under the limit while each paces alone.
    share = 10 * settings.LETHE_PROVIDER_PACE / 3
    assert budget._take() == pytest.approx(1 / share, abs=0.02)
