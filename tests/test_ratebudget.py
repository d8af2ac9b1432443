"""One rate budget per connection, shared by every worker: in-process, or in Redis."""

from __future__ import annotations

import socket
import uuid

import pytest

from dashboard import ratebudget
from dashboard.models import Connection


def test_workers_of_one_connection_share_one_budget_and_others_get_their_own():
    key, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = ratebudget.for_connection(key, 10)
    assert ratebudget.for_connection(key, 10) is first
    assert ratebudget.for_connection(other, 10) is not first


def test_requests_are_paced_evenly_below_the_limit_with_no_burst():
    budget = ratebudget.for_connection(str(uuid.uuid4()), 10)
    assert budget.rate == pytest.approx(10 * ratebudget.PACE)
    assert budget.burst == 1
    # Reserving ahead: each further request waits one more interval.
    waits = [budget._reserve() for _ in range(4)]
    assert waits[0] == 0
    interval = 1 / budget.rate
    for before, after in zip(waits[1:], waits[2:], strict=False):
        assert after - before == pytest.approx(interval, abs=0.01)


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
    waits = [one._reserve(), two._reserve(), one._reserve(), two._reserve()]
    assert waits[0] == pytest.approx(0, abs=0.01)
    interval = 1 / (10 * ratebudget.PACE)
    assert waits[3] == pytest.approx(3 * interval, abs=0.05)


def test_an_unreachable_redis_falls_back_to_pacing_in_process(settings):
    settings.LETHE_REDIS_URL = "redis://127.0.0.1:9/0"
    budget = ratebudget.for_connection(f"test-{uuid.uuid4()}", 10)
    assert budget._reserve() == 0  # no exception: paced locally instead
