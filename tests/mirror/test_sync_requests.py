"""Two "Sync now" requests at once start one run, and a request during a sync finds it at
once: row locks between database connections, so PostgreSQL only. (This file is not in
the SQLite lane of scripts/test.py: SQLite serializes the two requests' writes itself,
each starting with an UPDATE, but its in-memory test database refuses a second
connection's write rather than letting it wait.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from dashboard.mirror import sync
from dashboard.models import SyncRun

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(work: Callable[[], None]) -> threading.Thread:
    """``work`` on a database connection of its own, as another request or worker has."""
    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_sync_requests_at_once_start_one_run(connection, monkeypatch):
    """A double click or two tabs: the second request waits for the first to decide, then
    finds its run under way instead of starting another."""
    created = threading.Event()
    release = threading.Event()
    start = sync.start

    def slow_start(*args: Any, **kwargs: Any) -> SyncRun:
        run = start(*args, **kwargs)
        created.set()
        release.wait(10)  # the first request's run exists, not yet committed
        return run

    monkeypatch.setattr(sync, "start", slow_start)
    outcomes: list[bool] = []

    def ask() -> None:
        outcomes.append(sync.request(connection)[1])

    first = in_thread(ask)
    assert created.wait(10)
    second = in_thread(ask)
    second.join(0.5)  # without the lock it starts a run of its own meanwhile
    release.set()
    first.join(10)
    second.join(10)
    assert sorted(outcomes) == [False, True]
    assert connection.sync_runs.count() == 1


def test_sync_now_during_a_sync_finds_it_at_once(connection, convai_fake, settings):
    """The lock that keeps two requests from starting two runs must not wait for a sync
    under way, whose writes hold the connection's row for their foreign keys."""
    settings.LETHE_SYNC_CONCURRENCY = 1
    convai_fake.latency = 0.3  # one chat at a time: several seconds of reading
    run = sync.start(connection)
    worker = in_thread(lambda: sync.perform_sync(run.pk))
    deadline = time.monotonic() + 30
    while convai_fake.count("POST", "/character/chatHistory/details") < 2:  # listing written
        assert time.monotonic() < deadline
        time.sleep(0.05)
    found, new = sync.request(connection)
    # Answered while the sync still ran, not once it had committed.
    still_running = SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.RUNNING
    worker.join(60)
    assert still_running and (found.pk, new) == (run.pk, False)
    assert connection.sync_runs.count() == 1
