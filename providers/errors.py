"""The one error hierarchy a provider may raise. Nothing else escapes a provider.

Messages are written for the person looking at the screen: they say what the provider
answered and never contain a secret, a full URL with credentials or message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import Outcome


class ProviderError(Exception):
    """Base of every error a provider raises."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        # Outcomes an erase() had already settled when this error interrupted it, so a
        # paused job does not lose (and re-send) deletes that were acknowledged.
        self.partial: list[Outcome] = []

    def __str__(self) -> str:
        return self.message

    @property
    def sentence(self) -> str:
        """The message ending in exactly one full stop, for text that goes on after it
        (a provider's own words often end in one already)."""
        text = self.message.rstrip()
        return text if text.endswith((".", "!", "?")) else f"{text}."


class AuthError(ProviderError):
    """The provider refused the credentials (a wrong, expired or revoked key)."""


class RateLimited(ProviderError):
    """The provider asked us to slow down; `retry_after` is in seconds when it said."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = 429
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TemporaryError(ProviderError):
    """Worth trying again later: 5xx, timeouts, dropped connections."""

    def __init__(
        self, message: str, *, status: int | None = None, sent: bool = False
    ) -> None:
        super().__init__(message, status=status)
        # True when the request may have reached the provider before it failed, so the
        # outcome of a write is uncertain and must be read back before sending again.
        self.sent = sent


class PermanentError(ProviderError):
    """The provider rejected the request itself; sending it again will not help."""


class NotFound(PermanentError):
    """The provider does not know the id (an unknown character, session or chat)."""


class ProtocolError(ProviderError):
    """The provider answered with something that does not parse as documented."""
