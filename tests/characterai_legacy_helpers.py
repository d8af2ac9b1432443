"""Shared helpers of the legacy Character.AI provider tests (not a test module)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from providers import Conversation, Message, Outcome, RateBudget, Target
from providers.characterai.legacy import CharacterAILegacyProvider
from providers.fakes.base import FakeServer
from providers.fakes.characterai import DEMO_TOKEN as NEO_DEMO_TOKEN
from providers.fakes.characterai_legacy import (
    DEMO_TOKEN,
    CharacterAILegacyFake,
)

T = TypeVar("T")
GONE_NOTE = "This account has no legacy histories (Character.AI answered 410 Gone)."


def restore(fake: CharacterAILegacyFake) -> None:
    """Fresh seeded data and default knobs, for the next test."""
    fake.reset()
    fake.tokens = frozenset({DEMO_TOKEN, NEO_DEMO_TOKEN})
    fake.anonymous_tokens = frozenset()
    fake.gone = False
    fake.soft_delete = False
    fake.max_delete = None
    fake.retry_after = 1.0


def make(server: FakeServer, token: str = DEMO_TOKEN, **kwargs: Any
         ) -> CharacterAILegacyProvider:
    kwargs.setdefault("backoff", 0.001)
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    return CharacterAILegacyProvider({"token": token}, {"plus_url": server.url}, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def read(provider: CharacterAILegacyProvider, conv_id: str) -> list[Message]:
    async with provider:
        return [m async for m in provider.messages(Conversation(conv_id, ""))]


async def listing(provider: CharacterAILegacyProvider) -> list[Conversation]:
    async with provider:
        return [c async for c in provider.conversations()]


async def erase(provider: CharacterAILegacyProvider, targets: list[Target]) -> list[Outcome]:
    async with provider:
        return await provider.erase(targets)


async def verify(provider: CharacterAILegacyProvider, targets: list[Target]) -> list[str]:
    async with provider:
        return [p.state for p in await provider.verify(targets)]


def new_history(fake: CharacterAILegacyFake, messages: int, alternatives: float = 0) -> str:
    return fake.add_history(fake.character_ids()[0], messages, alternatives)


def message_targets(fake: CharacterAILegacyFake, history_id: str,
                    uuids: list[str]) -> list[Target]:
    owner = fake.owner(history_id)
    assert owner is not None
    return [Target("message", u, history_id, owner.id) for u in uuids]


def history_target(fake: CharacterAILegacyFake, history_id: str) -> Target:
    owner = fake.owner(history_id)
    return Target("conversation", history_id, history_id, owner.id if owner else "")


# The fixtures both legacy test modules use; they import them by name.
@pytest.fixture(scope="module")
def fake() -> CharacterAILegacyFake:
    return CharacterAILegacyFake(seed=5, characters=2, histories=3, latency=0.001)


@pytest.fixture(scope="module")
def server(fake: CharacterAILegacyFake) -> Iterator[FakeServer]:
    with fake.serve() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(fake: CharacterAILegacyFake) -> Iterator[None]:
    restore(fake)
    yield
    restore(fake)
