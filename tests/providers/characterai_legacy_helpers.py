"""Shared helpers of the two legacy Character.AI provider test modules (not a test module).

Both import ``make_fake`` from here, so they run against the same fake (one per module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from providers import Conversation, Message, Outcome, RateBudget, Target
from providers.characterai.legacy import CharacterAILegacyProvider
from providers.fakes.base import FakeServer
from providers.fakes.characterai_legacy import (
    DEMO_TOKEN,
    CharacterAILegacyFake,
)
from tests.providers.loopback import policy

T = TypeVar("T")
GONE_NOTE = "This account has no legacy histories (Character.AI answered 410 Gone)."


def make_fake() -> CharacterAILegacyFake:
    return CharacterAILegacyFake(seed=5, characters=2, histories=3, latency=0.001)


def make(server: FakeServer, token: str = DEMO_TOKEN, *, retries: int = 2, **kwargs: Any
         ) -> CharacterAILegacyProvider:
    kwargs.setdefault("policy", policy(backoff=0.001, retries=retries))
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
