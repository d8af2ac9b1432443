"""The system suite's own world: a PostgreSQL cluster and a Redis that the tests stop, kill
and start again, a Celery worker and beat as real processes on them, and the Convai fake on
loopback, slow enough for a fault to land in the middle of a job.

`scripts/test.py --system` picks the ports (in DATABASE_URL and CELERY_BROKER_URL) before
Django reads its settings; the servers are started here, before the test database is made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dashboard.models import Connection
from providers.fakes.convai import ConvaiFake
from tests import processes
from tests.services import Postgres, Redis

from .world import Celery, Servers


def _own_port(variable: str, shared: int) -> int:
    port = urlsplit(os.environ.get(variable, "")).port
    if port is None or port == shared:
        # Never stop or kill a server someone else uses.
        pytest.exit(f"The system suite needs {variable} on a port of its own; run it with "
                    "`scripts/test.py --system`.", returncode=2)
    return port


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    postgres = Postgres(_own_port("DATABASE_URL", 5432)).start()
    redis = Redis(_own_port("CELERY_BROKER_URL", 6379)).start()
    try:
        yield Servers(postgres, redis)
    finally:
        redis.remove()
        postgres.remove()


@pytest.fixture(scope="session")
def django_db_setup(servers: Servers, django_db_setup: None) -> None:
    """pytest-django's test database, made once the cluster is up."""


@pytest.fixture
def convai_fake() -> ConvaiFake:
    return ConvaiFake(seed=31, characters=8, sessions=3, turns=(1, 1))


@pytest.fixture
def mirrored(synced: Connection, convai_fake: ConvaiFake) -> Connection:
    """A synced connection whose provider now answers slowly: a job of many small deletes
    lasts long enough for a fault to land in the middle of it."""
    convai_fake.clear_faults()  # count requests and deletes from here on
    convai_fake.latency = 0.3
    return synced


@pytest.fixture
def celery(tmp_path: Path, servers: Servers, transactional_db: None) -> Iterator[Celery]:
    """Nothing started yet; the processes a test started are stopped afterwards, before the
    database is emptied, and their logs printed (pytest shows them when the test fails)."""
    env = processes.environment(
        tmp_path,
        CELERY_BROKER_URL=f"{servers.redis.url}/0",
        LETHE_REDIS_URL=f"{servers.redis.url}/1",  # the shared rate budget
        LETHE_ERASE_WORKERS="2",
    )
    cluster = Celery(env, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
