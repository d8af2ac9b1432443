"""Shared helpers of the KooSearch provider test modules (not a test module).

Each imports ``make_fake`` from here, so they run against the same fake (one per module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pytest

from providers import Account, RateBudget, Target
from providers.fakes.base import FakeResponse, FakeServer
from providers.fakes.koosearch import DEMO_PASSWORD, KooSearchFake
from providers.koosearch.client import KooSearchProvider
from providers.records import Outcome
from tests.providers.loopback import policy

T = TypeVar("T")
TOKENS = "/v3/auth/tokens"


def make_fake() -> KooSearchFake:
    return KooSearchFake(seed=5, repos=2, chats=6, latency=0.001)


def make(server: FakeServer, fake: KooSearchFake, password: str = DEMO_PASSWORD,
         options: Mapping[str, str] | None = None, *, retries: int = 2, **kwargs: Any
         ) -> KooSearchProvider:
    kwargs.setdefault("policy", policy(backoff=0.001, retries=retries))
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    _, base = fake.client_config(server.url)
    return KooSearchProvider({"password": password}, {**base, **(options or {})}, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def chats_path(fake: KooSearchFake) -> str:
    return f"/v1/{fake.project_id}/applications/{fake.application_id}/uni-search/chat-history"


def intercept(monkeypatch: pytest.MonkeyPatch, fake: KooSearchFake,
              answer: Callable[[str, str, bytes], FakeResponse | None]) -> None:
    """Let ``answer(method, path, body)`` stand in for the fake when it returns a response."""
    real = fake.route

    def route(method: str, path: str, headers: Mapping[str, str], body: bytes) -> FakeResponse:
        return answer(method, path, body) or real(method, path, headers, body)

    monkeypatch.setattr(fake, "route", route)


def targets_of(fake: KooSearchFake, ids: list[str]) -> list[Target]:
    return [Target("conversation", i, i, fake.chats[i].repo_id) for i in ids]


async def erase(provider: KooSearchProvider, targets: list[Target]) -> list[Outcome]:
    async with provider:
        return await provider.erase(targets)


async def check(provider: KooSearchProvider) -> Account:
    async with provider:
        return await provider.check()
