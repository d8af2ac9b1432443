"""A heartbeat from a side thread: for work whose own thread is busy (a long provider
call) or whose writes no one else can see yet (a sync's single transaction)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError
from django.db import connection as db_connection


@contextmanager
def beating(beat: Callable[[], object], every: float, name: str) -> Iterator[None]:
    """Call ``beat`` every ``every`` seconds from a thread with its own database
    connection (so it commits at once) while the block runs. A beat that fails (the
    database is away) is skipped; it never fails the block."""
    stop = threading.Event()

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
