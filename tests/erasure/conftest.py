"""Fixtures of the erasure tests: a mirror of any provider's fake, for the tests that run
every provider through the same erasure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboard.mirror import sync
from dashboard.models import Connection
from providers.fakes import FAKES
from providers.fakes.base import FakeProvider
from tests.helpers import connect


@pytest.fixture
def mirrored(request: pytest.FixtureRequest, owner) -> Iterator[tuple[FakeProvider, Connection]]:  # type: ignore[no-untyped-def]
    """The fake of the provider named by the test's (indirect) parameter, served on
    loopback, and a connection to it, synced."""
    fake = FAKES[request.param].sized(conversations=6, messages=4, seed=17)
    with fake.serve() as server:
        connection = connect(owner, fake, server.url)
        run = sync.perform_sync(sync.start(connection).pk)
        assert run.status == "ok", run.error
        yield fake, connection
