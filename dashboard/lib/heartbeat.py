"""Heartbeats: how workers show they are alive, and when one counts as dead.

A worker silent for LETHE_STUCK_AFTER seconds is taken for dead: its syncs are failed, its
erasure jobs taken over and its items in flight read back. It beats at a quarter of that
(at most every 5 s), from a side thread where its own thread is busy (a long provider call)
or its writes are not visible yet (a sync's single transaction)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db import connection as db_connection
from django.utils import timezone


def silent_since() -> datetime:
    """A worker whose last beat is older than this is dead."""
    return timezone.now() - timedelta(seconds=settings.LETHE_STUCK_AFTER)


def interval() -> float:
    return max(0.5, min(5.0, settings.LETHE_STUCK_AFTER / 4))


@contextmanager
def beating(beat: Callable[[], object], name: str) -> Iterator[None]:
    """Call ``beat`` every `interval()` seconds from a thread with its own database
    connection (so it commits at once) while the block runs. A beat that fails (the
    database is away) is skipped; it never fails the block."""
    stop = threading.Event()
    every = interval()

    def run() -> None:
        try:
            while not stop.wait(every):
                try:
                    beat()
                except DatabaseError:
                    pass
        finally:
            db_connection.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
