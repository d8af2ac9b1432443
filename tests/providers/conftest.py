"""The fake every provider test module runs against, served once per module.

A module that declares ``make_fake()`` (returning a fresh fake of the provider it tests)
gets three fixtures: ``fake``, built once per module; ``server``, that fake behind a
loopback HTTP server for the module; and ``fresh``, applied to each of its tests, which
rebuilds the fake's seeded data before the test and puts back afterwards every setting the
test changed (tokens, soft deletes, retry-after and the like), so tests can flip a setting
without cleaning up and never see another test's. Modules without ``make_fake()`` (the
contract suite builds its own fakes) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from providers.fakes.base import FakeProvider, FakeServer

# A fake's settings are its public attributes holding plain values; its data (dicts, lists,
# counters, generators) is rebuilt by reset() instead.
_SETTING_TYPES = (type(None), bool, int, float, str, bytes, tuple, frozenset, datetime,
                  timedelta)


def _declares_fake(module: ModuleType) -> bool:
    return callable(getattr(module, "make_fake", None))


def _settings(fake: FakeProvider) -> dict[str, Any]:
    return {name: value for name, value in vars(fake).items()
            if not name.startswith("_") and isinstance(value, _SETTING_TYPES)}


@pytest.fixture(scope="module")
def fake(request: pytest.FixtureRequest) -> FakeProvider:
    if not _declares_fake(request.module):
        raise pytest.UsageError(f"{request.module.__name__} uses the `fake` fixture but "
                                "declares no make_fake()")
    made: FakeProvider = request.module.make_fake()
    return made


@pytest.fixture(scope="module")
def server(fake: FakeProvider) -> Iterator[FakeServer]:
    with fake.serve() as running:
        yield running


@pytest.fixture(scope="module")
def _defaults(fake: FakeProvider) -> dict[str, Any]:
    """The fake's settings as ``make_fake()`` left them, taken before any test ran."""
    return _settings(fake)


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _declares_fake(request.module):
        yield
        return
    the_fake: FakeProvider = request.getfixturevalue("fake")
    defaults: dict[str, Any] = request.getfixturevalue("_defaults")
    the_fake.reset()
    yield
    for name, value in defaults.items():
        setattr(the_fake, name, value)
