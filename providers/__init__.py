"""Provider clients: plain Python (no Django), one module or package per provider.

Each client implements the contract of ``base.Provider`` over the shared HTTP layer in
``http``; the dashboard reaches a provider only through ``REGISTRY`` and these names.
``fakes`` holds a local fake server of each provider for tests, the demo and benchmarks.
"""

from __future__ import annotations

from .base import Provider
from .characterai import CharacterAILegacyProvider, CharacterAIProvider
from .convai import ConvaiProvider
from .errors import (
    AuthError,
    NotFound,
    PermanentError,
    ProtocolError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from .http import HttpPolicy, RateBudget
from .koosearch import KooSearchProvider
from .records import (
    Account,
    Capabilities,
    Character,
    Conversation,
    FieldSpec,
    Message,
    Outcome,
    Presence,
    Target,
)

REGISTRY: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (CharacterAIProvider, CharacterAILegacyProvider, ConvaiProvider, KooSearchProvider)
}


def get(name: str) -> type[Provider]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PermanentError(f"unknown provider {name!r}") from None


__all__ = [
    "REGISTRY",
    "Account",
    "AuthError",
    "Capabilities",
    "CharacterAILegacyProvider",
    "CharacterAIProvider",
    "Character",
    "ConvaiProvider",
    "Conversation",
    "FieldSpec",
    "HttpPolicy",
    "KooSearchProvider",
    "Message",
    "NotFound",
    "Outcome",
    "PermanentError",
    "Presence",
    "ProtocolError",
    "Provider",
    "ProviderError",
    "RateBudget",
    "RateLimited",
    "Target",
    "TemporaryError",
    "get",
]
