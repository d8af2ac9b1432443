"""Fixtures shared by the dashboard tests: the Convai fake on a real loopback port, users,
a connection to the fake, and a mirror synced from it."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest
from django.test import Client

from dashboard.mirror import sync
from dashboard.models import Connection
from providers.fakes.base import FakeServer
from providers.fakes.characterai import CharacterAIFake
from providers.fakes.convai import ConvaiFake
from tests.helpers import (
    PASSWORD,
    Hook,
    connect,
    make_connection,
    sync_now,
    with_role,
)

# The system suite stops and kills the servers it runs on, so it runs alone, on servers of
# its own: `scripts/test.py --system` (and `make test`, beside the rest).
if not os.environ.get("LETHE_SYSTEM_SUITE"):
    collect_ignore = ["system"]


@pytest.fixture(autouse=True)
def _prompt_jobs_and_providers(settings):  # type: ignore[no-untyped-def]
    """The fakes answer at once: no pacing, short backoffs, and confirmed jobs start at
    once. Tests of the cancel window, pacing or backoff set their own values."""
    settings.LETHE_CANCEL_WINDOW = 0
    settings.LETHE_PROVIDER_RATE = 1000.0
    settings.LETHE_PROVIDER_BACKOFF = 0.01


@pytest.fixture
def convai_fake() -> ConvaiFake:
    return ConvaiFake(seed=7, characters=2, sessions=6)


@pytest.fixture
def convai_server(convai_fake: ConvaiFake) -> Iterator[FakeServer]:
    with convai_fake.serve() as server:
        yield server


@pytest.fixture
def owner(django_user_model):  # type: ignore[no-untyped-def]
    """The owner of the test connection; an operator, who may sync and request erasures."""
    return with_role(django_user_model.objects.create_user("owner", password=PASSWORD),
                     "operator")


@pytest.fixture
def outsider(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("outsider", password=PASSWORD)


@pytest.fixture
def connection(db, owner, convai_server: FakeServer) -> Connection:  # type: ignore[no-untyped-def]
    return make_connection(owner, convai_server.url)


@pytest.fixture
def synced(connection: Connection) -> Connection:
    run = sync.perform_sync(sync.start(connection).pk)
    assert run.status == "ok", run.error
    return connection


@pytest.fixture
def celery_worker(transactional_db):  # type: ignore[no-untyped-def]
    """A real Celery worker (solo pool, in a thread) consuming the in-memory broker."""
    from celery.contrib.testing.worker import start_worker

    from dashboard.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def sso(settings):  # type: ignore[no-untyped-def]
    """Header SSO on, believed from the proxy at 10.0.0.1 only; a test client."""
    settings.LETHE_SSO_HEADER_USER = "X-Forwarded-User"
    settings.LETHE_SSO_HEADER_EMAIL = "X-Forwarded-Email"
    settings.LETHE_SSO_HEADER_GROUPS = "X-Forwarded-Groups"
    settings.LETHE_SSO_TRUSTED_PROXIES = ["10.0.0.1/32"]
    settings.LETHE_LOCAL_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = ["dashboard.team.sso.ProxyHeaderBackend",
                                        "django.contrib.auth.backends.ModelBackend"]
    return Client()


@pytest.fixture
def piped_stdin(monkeypatch):  # type: ignore[no-untyped-def]
    """Feed a command's standard input, as `printf ... | ./manage.py connect` does."""
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
    return feed


@pytest.fixture
def planted_fake() -> CharacterAIFake:
    """A Character.AI fake (it erases single messages) of two chats."""
    return CharacterAIFake(seed=11, characters=1, chats=2, turns=(8, 8), archived=0, pinned=0)


@pytest.fixture
def planted(planted_fake: CharacterAIFake) -> dict[str, str]:
    """One value of each kind findings detect, planted in the fake (the team pattern that
    finds the "custom" one added); the turn ids by kind. The test's own database mark
    decides whether that is in a transaction (a test reading the database from outside
    needs it committed)."""
    from dashboard.models import FindingPattern
    from providers.fakes.planted import CUSTOM_PATTERN, PLANTED

    FindingPattern.objects.create(name=CUSTOM_PATTERN[0], pattern=CUSTOM_PATTERN[1])
    return planted_fake.plant(list(PLANTED))


@pytest.fixture
def planted_cai(owner, planted_fake: CharacterAIFake, planted) -> Iterator[Connection]:  # type: ignore[no-untyped-def]
    """A connection of the owner to that fake, synced."""
    with planted_fake.serve() as server:
        connection = connect(owner, planted_fake, server.url)
        sync_now(connection)
        yield connection


@pytest.fixture
def hook(settings) -> Iterator[Hook]:  # type: ignore[no-untyped-def]
    receiver = Hook()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    settings.LETHE_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
