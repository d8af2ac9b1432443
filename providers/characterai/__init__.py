"""Character.AI: the chat v2 ("neo") client and the legacy chat v1 "histories" client.

``chat`` and ``chat_erase`` hold the chat v2 client and its erasure, ``legacy`` and
``legacy_support`` the legacy one; ``errors`` reads Character.AI's error answers for both.
"""

from __future__ import annotations

from .chat import CharacterAIProvider
from .legacy import CharacterAILegacyProvider

__all__ = ["CharacterAILegacyProvider", "CharacterAIProvider"]
