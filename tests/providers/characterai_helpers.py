"""Shared helpers of the two Character.AI provider test modules (not a test module).

Both import ``make_fake`` from here, so they run against the same fake (one per module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from providers import Outcome, RateBudget, Target
from providers.characterai.chat import CharacterAIProvider
from providers.fakes import FakeServer
from providers.fakes.characterai import DEMO_TOKEN, CharacterAIFake
from providers.fakes.characterai_data import Chat
from tests.providers.loopback import policy

T = TypeVar("T")


def make_fake() -> CharacterAIFake:
    return CharacterAIFake(seed=5, characters=2, chats=3, turns=(8, 30), archived=1,
                           latency=0.001)


def make(server: FakeServer, token: str = DEMO_TOKEN, *, retries: int = 2, **kwargs: Any
         ) -> CharacterAIProvider:
    kwargs.setdefault("policy", policy(backoff=0.001, retries=retries))
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    options = {"neo_url": server.url, "plus_url": server.url}
    return CharacterAIProvider({"token": token}, options, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def chat_of(fake: CharacterAIFake, chat_id: str) -> Chat:
    found = fake.find_chat(chat_id)
    assert found is not None
    return found


def remove_path(chat_id: str) -> str:
    return f"/turns/{chat_id}/remove"


def active_chat(fake: CharacterAIFake, index: int = 0) -> str:
    char_id = fake.character_ids()[index]
    return next(c for c in fake.chat_ids(char_id) if chat_of(fake, c).state != "STATE_ARCHIVED")


def message_targets(fake: CharacterAIFake, chat_id: str, count: int | None = None
                    ) -> list[Target]:
    return [Target("message", t, chat_id) for t in fake.message_ids(chat_id)[:count]]


async def _call(provider: CharacterAIProvider, name: str, *args: Any) -> Any:
    async with provider:
        return await getattr(provider, name)(*args)


def erase(server: FakeServer, targets: list[Target], **kwargs: Any) -> list[Outcome]:
    result: list[Outcome] = run(_call(make(server, **kwargs), "erase", targets))
    return result


def verify(server: FakeServer, targets: list[Target]) -> list[str]:
    return [p.state for p in run(_call(make(server), "verify", targets))]
