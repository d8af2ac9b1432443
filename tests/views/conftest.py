"""Fixtures of the screen tests."""

from __future__ import annotations

import pytest

from dashboard.mirror import sync
from dashboard.models import Connection
from tests.helpers import make_connection


@pytest.fixture
def second(synced, convai_server) -> Connection:  # type: ignore[no-untyped-def]
    """A second Convai connection of the same owner, synced: same characters, new rows."""
    other = make_connection(synced.owner, convai_server.url)
    Connection.objects.filter(pk=other.pk).update(label="Second Convai")
    assert sync.perform_sync(sync.start(other).pk).status == "ok"
    return Connection.objects.get(pk=other.pk)
