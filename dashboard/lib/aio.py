"""Drive an async provider from synchronous Django code on one private event loop.

The ORM stays in the calling thread (and its database connection); only provider calls
run on the loop, which lives as long as the provider's HTTP client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

import providers

T = TypeVar("T")


class ProviderSession:
    def __init__(self, provider: providers.Provider) -> None:
        self.provider = provider
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> ProviderSession:
        self.loop.run_until_complete(self.provider.__aenter__())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.loop.run_until_complete(self.provider.__aexit__(exc_type, exc, tb))
        finally:
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)
