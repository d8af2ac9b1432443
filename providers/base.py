"""The contract every provider implements.

A provider is constructed with one connection's decrypted secrets and options and used as
an async context manager, which owns one HTTP client (and so one connection pool) for its
lifetime. Secrets live only on the instance and in the auth header; ``repr`` hides them.

It declares what it can erase (``capabilities``) and the connection fields it needs
(``fields``); ``check()`` names the account, ``characters()``, ``conversations()`` and
``messages()`` read frozen records (paging stays inside), ``erase()`` returns one outcome
per target and ``verify()`` says whether each is still there. Only the errors of
``errors`` leave a provider.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Self, TypeVar

import httpx

from .egress import transport_for
from .errors import PermanentError
from .hosts import HostRules
from .http import DEFAULT_ERROR_KEYS, Classifier, HttpClient, HttpPolicy, RateBudget
from .meter import Meter
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
from .tokens import MemoryTokenCache, TokenCache

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]


class Provider(abc.ABC):
    name: ClassVar[str]
    label: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    fields: ClassVar[tuple[FieldSpec, ...]]
    # Its public hosts (fnmatch patterns): any other needs an admin's leave (hosts.py).
    public_hosts: ClassVar[tuple[str, ...]] = ()
    # Templates read these class attributes; tell them not to instantiate the class.
    do_not_call_in_templates: ClassVar[bool] = True

    def __init__(
        self,
        secrets: Mapping[str, str],
        options: Mapping[str, str],
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RateBudget | None = None,
        token_cache: TokenCache | None = None,
        cache_key: str = "",
    ) -> None:
        self._secrets: dict[str, str] = {}
        self.options: dict[str, str] = {}
        for spec in self.fields:
            source = secrets if spec.secret else options
            value = (source.get(spec.name) or "").strip() or spec.default
            if spec.required and not value:
                kind = "secret" if spec.secret else "option"
                raise PermanentError(f"{self.label}: the {kind} '{spec.label}' is missing")
            (self._secrets if spec.secret else self.options)[spec.name] = value
        self.policy = policy or HttpPolicy()
        for name, value in self.options.items():
            if name.endswith("_url") and value:
                self.options[name] = self.rules().check_url(value, self.label)
        self._transport = transport
        # One budget per connection object unless the caller shares one across workers.
        self.budget = budget or RateBudget(
            self.capabilities.requests_per_second, self.capabilities.burst
        )
        self._http: HttpClient | None = None
        # Short-lived tokens, shared across instances of one connection under `cache_key`.
        self.token_cache: TokenCache = token_cache or MemoryTokenCache()
        self.cache_key = cache_key or f"{self.name}:{id(self)}"
        # Plain sentences for the person, gathered while working (e.g. "this account has no
        # legacy histories"); the dashboard shows them with the sync run.
        self.notes: list[str] = []
        # What this connection's clients sent and how often the provider said 429.
        self.meter = Meter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options.get('base_url', '')}>"

    def rules(self) -> HostRules:
        """Where this connection may send requests: see hosts.py."""
        return HostRules(self.public_hosts, self.policy.allowed_hosts)

    @classmethod
    def check_address(cls, url: str, allowed_hosts: tuple[str, ...]) -> str:
        """An address for this provider, checked as the provider will check it, for forms:
        the normalised URL, or PermanentError saying what is wrong."""
        return HostRules(cls.public_hosts, allowed_hosts).check_url(url, cls.label)

    def secret(self, name: str) -> str:
        return self._secrets[name]

    # -- HTTP plumbing -------------------------------------------------------------------

    # Where the provider puts its error text, and which statuses mean "bad credentials".
    error_keys: ClassVar[tuple[str, ...]] = DEFAULT_ERROR_KEYS
    auth_statuses: ClassVar[tuple[int, ...]] = (401, 403)

    def _base_url(self) -> str:
        return self.options["base_url"]

    @abc.abstractmethod
    def _headers(self) -> dict[str, str]:
        """Headers sent with every request, including the credentials."""

    def _classifier(self) -> Classifier | None:
        """The provider's own reading of its answers, given to each of its clients as
        HttpClient's ``classify``; None when status codes say it all."""
        return None

    def _auth(self) -> httpx.Auth | None:
        """Credentials added to each request as it leaves (HttpClient's ``auth``), for those
        that change while the provider works; None when ``_headers`` carries them."""
        return None

    def _open(self, base_url: str) -> HttpClient:
        """A client to ``base_url`` that speaks for this provider: its credentials, policy,
        transport, rate budget and way of reading errors."""
        return HttpClient(
            base_url,
            label=self.label,
            policy=self.policy,
            headers=self._headers(),
            transport=self._transport or transport_for(base_url, self.rules(), self.label),
            budget=self.budget,
            error_keys=self.error_keys,
            auth_statuses=self.auth_statuses,
            classify=self._classifier(),
            auth=self._auth(),
            meter=self.meter,
        )

    async def __aenter__(self) -> Self:
        self._http = self._open(self._base_url())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            raise RuntimeError("use the provider inside `async with provider:`")
        return self._http

    # -- the contract --------------------------------------------------------------------

    @abc.abstractmethod
    async def check(self) -> Account:
        """The account the key belongs to; AuthError on a bad key."""

    @abc.abstractmethod
    def characters(self) -> AsyncIterator[Character]: ...

    @abc.abstractmethod
    def conversations(self, character: Character | None = None) -> AsyncIterator[Conversation]:
        """Conversations of one character, or of every character when None."""

    @abc.abstractmethod
    def messages(self, conversation: Conversation) -> AsyncIterator[Message]:
        """Messages oldest first (position 0 = oldest)."""

    async def newest_messages(self, conversation: Conversation, known_id: str
                              ) -> list[Message] | None:
        """For an incremental sync: the messages from ``known_id`` (the newest one the
        mirror holds) on, oldest first, with positions counted from it (0; newer ones 1, 2,
        ...), reading no further back than the page that holds it. None when the provider
        cannot do that (this default: it reads conversations whole anyway) or ``known_id``
        is gone; the caller then reads the conversation whole with ``messages``."""
        return None

    @abc.abstractmethod
    async def erase(self, targets: Sequence[Target]) -> list[Outcome]:
        """One outcome per target, in the same order; batches to capabilities.max_batch.

        AuthError and RateLimited propagate (the job pauses); the outcomes already settled
        before that are attached to the exception as ``partial`` so none is lost.
        """

    @abc.abstractmethod
    async def verify(self, targets: Sequence[Target]) -> list[Presence]:
        """Whether each target is still returned by the provider, in the same order."""
