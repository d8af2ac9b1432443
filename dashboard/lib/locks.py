"""Locks that keep work on one connection from interleaving where it must not, held until
the end of the current transaction (PostgreSQL advisory locks; nothing else is locked, so
a page that updates the connection's row never waits on them).

- MIRROR: a sync's writes, and the purge that follows an erasure outcome. A sync holds it
  for its whole transaction, so a purge waits for the sync to commit and then sees (and
  cleans) what it wrote, and a sync reads only after purges committed: erased text cannot
  slip back in between, and the two never deadlock on rows locked in different orders.
- BOOKING: confirming jobs, retrying failed items: moments that decide which job holds an
  item, so two people confirming the same selection cannot both send it.

SQLite (the demo) writes one transaction at a time anyway; there they do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection as db

MIRROR = 0x4C4D  # "LM"
BOOKING = 0x4C42  # "LB"


def hold(kind: int, connection_ids: Iterable[int | None]) -> None:
    """Take the ``kind`` lock of each connection, in one order (so no two callers wait on
    each other crosswise), for the rest of the transaction."""
    if db.vendor != "postgresql":
        return
    with db.cursor() as cursor:
        for pk in sorted({pk for pk in connection_ids if pk is not None}):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [kind, pk])
