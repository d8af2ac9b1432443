"""Shared helpers of the two Convai provider test modules (not a test module).

Both import ``make_fake`` from here, so they run against the same fake (one per module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from providers import ConvaiProvider, RateBudget, Target
from providers.fakes import ConvaiFake, FakeServer
from providers.fakes.convai import DEMO_KEY
from tests.providers.loopback import policy

T = TypeVar("T")
DELETE = "/character/chatHistory/delete"


def make_fake() -> ConvaiFake:
    return ConvaiFake(seed=5, characters=2, sessions=5, latency=0.001)


def make(server: FakeServer, key: str = DEMO_KEY, *, retries: int = 2, **kwargs: Any
         ) -> ConvaiProvider:
    kwargs.setdefault("policy", policy(backoff=0.001, retries=retries))
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    return ConvaiProvider({"api_key": key}, {"base_url": server.url}, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def session_targets(fake: ConvaiFake, char_id: str, count: int | None = None) -> list[Target]:
    ids = fake.session_ids(char_id)[:count]
    return [Target("conversation", sid, sid, char_id) for sid in ids]
