"""Huawei IAM tokens, and the part of the KooSearch client that sends them.

A project-scoped IAM user token comes from ``POST {iam_url}/v3/auth/tokens`` with the user's
password (HTTP 201, the token in ``X-Subject-Token``, ``token.expires_at`` in the body;
https://support.huaweicloud.com/intl/en-us/api-iam/iam_30_0001.html) and goes in
``X-Auth-Token``. It is never logged and never put in an exception message.

- ``issue_token`` asks IAM through an ``HttpClient`` of its own, so the request has the
  connection's policy, retries and logs. Asking twice is harmless (IAM does not revoke the
  older token), so it is sent as a read: outages and 5xx are retried. A 401 is the password
  refused; the message names the user and the account, never the password.
- ``TokenKeeper`` shares one token between the provider instances of a connection through
  its ``TokenCache``. The key is ``cache_key`` plus a digest of IAM endpoint, user, account
  and project, so that after the connection is edited a token issued for the old ones is
  not reused.
- ``IamAuth`` puts the token on each request as it leaves and renews it once on a refusal.
- ``HuaweiTokenProvider`` ties them together for a provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from ..base import Provider
from ..errors import (
    AuthError,
    PermanentError,
    ProtocolError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from ..http import Classifier, HttpClient, error_text, json_or_none, parse_retry_after
from ..tokens import TokenCache
from .errors import AUTH_STATUSES, answer_classifier, huawei_error

log = logging.getLogger("providers.koosearch")

IAM = "Huawei IAM"
TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a path, not a password  # nosec B105
TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name  # nosec B105
# A token is renewed this long before it expires, so that no request races its expiry: at
# most RENEW_BEFORE, and a tenth of its lifetime for a short-lived one (else a token living
# less than RENEW_BEFORE would never be used twice).
RENEW_BEFORE = timedelta(minutes=5)
RENEW_FRACTION = 10
# IAM documents 24 h; used only when the answer does not say.
DEFAULT_LIFETIME = timedelta(hours=24)
DEFAULT_IAM_URL = "https://iam.{region}.myhuaweicloud.com"
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
REGION_PATTERN = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,4}")


@dataclass(frozen=True)
class IamLogin:
    """Who asks IAM for a token; ``repr`` leaves the password out."""

    iam_url: str
    user: str
    domain: str
    project_id: str
    password: str = field(repr=False)

    def fingerprint(self) -> str:
        """Who the token is for, without the password, as a short digest."""
        who = "\n".join((self.iam_url, self.user, self.domain, self.project_id))
        return hashlib.sha256(who.encode()).hexdigest()[:16]

    def body(self) -> dict[str, Any]:
        # Scoped by project id rather than by name (a region name such as ap-southeast-1),
        # because the id is what the KooSearch paths carry; both are documented.
        return {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.user, "password": self.password,
                "domain": {"name": self.domain}}}},
            "scope": {"project": {"id": self.project_id}},
        }}


def valid_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


def iam_classifier(login: IamLogin) -> Classifier:
    """The IAM client's ``classify`` hook: IAM's refusals, naming who was refused."""

    def read(response: httpx.Response) -> ProviderError | None:
        if response.is_success:
            return None
        found = huawei_error(json_or_none(response))
        reason = (f"{found[1]} ({found[0]})" if found[0] else found[1]) if found else \
            error_text(response)
        status = response.status_code
        who = f"user {login.user} in account {login.domain}"
        if status == 401:
            return AuthError(f"{IAM} refused the password for {who}: {reason}", status=status)
        if status == 403:
            return AuthError(f"{IAM} refused a token to {who}: {reason}", status=status)
        if status == 429:
            return RateLimited(f"{IAM} asked to slow down: {reason}",
                               retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            return TemporaryError(f"{IAM} answered {status}: {reason}", status=status)
        return PermanentError(
            f"{IAM} refused a token for {who} and project {login.project_id}: {reason}",
            status=status,
        )

    return read


def _expiry(response: httpx.Response) -> datetime:
    try:
        moment = datetime.fromisoformat(json_or_none(response)["token"]["expires_at"].strip())
    except (AttributeError, KeyError, TypeError, ValueError):
        return datetime.now(UTC) + DEFAULT_LIFETIME
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def issue_token(iam: HttpClient, login: IamLogin) -> tuple[str, datetime]:
    """A new token and its expiry, from ``iam`` (a client of the IAM endpoint)."""
    # nocatalog: the service catalog is large and not needed.
    response = await iam.request("POST", TOKEN_PATH, params={"nocatalog": "true"},
                                 json_body=login.body())
    token = response.headers.get("X-Subject-Token", "").strip()
    if not token:
        raise ProtocolError(f"{IAM} answered without an X-Subject-Token header")
    return token, _expiry(response)


def renew_at(expires_at: datetime, now: datetime) -> datetime:
    """When a token that expires at ``expires_at``, issued ``now``, should be replaced."""
    lifetime = max(expires_at - now, timedelta(0))
    return expires_at - min(RENEW_BEFORE, lifetime / RENEW_FRACTION)


class TokenKeeper:
    """The connection's token: from the shared cache while fresh, else from IAM.

    The cache holds a token until its renewal time, not until IAM's expiry: the margin
    depends on the lifetime seen when the token was issued, which a cache entry does not
    carry, and this way every instance sharing the cache renews at the same moment.
    """

    def __init__(self, cache: TokenCache, key: str,
                 issue: Callable[[], Awaitable[tuple[str, datetime]]]) -> None:
        self._cache = cache
        self._key = key
        self._issue = issue
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> str | None:
        cached = self._cache.get(self._key)
        if cached and cached[1] > datetime.now(UTC):
            return cached[0]
        return None

    def _locked(self) -> asyncio.Lock:
        # Created on first use so it belongs to the running event loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _new(self) -> str:
        token, expires_at = await self._issue()
        self._cache.set(self._key, token, renew_at(expires_at, datetime.now(UTC)))
        return token

    async def token(self) -> str:
        if token := self._fresh():
            return token
        async with self._locked():
            # Another request of this instance may have fetched one while we waited.
            return self._fresh() or await self._new()

    async def renew(self, refused: str) -> str:
        """A token other than ``refused``: one another request already got, or a new one."""
        async with self._locked():
            current = self._fresh()
            if current and current != refused:
                return current
            self._cache.delete(self._key)
            return await self._new()


class IamAuth(httpx.Auth):
    """Puts the IAM token on each request as it leaves, and on a 401 or 403 renews it once
    and sends the request again.

    httpx runs this inside each send, after the rate budget granted the request, so a token
    is taken when the request leaves, not before a wait in the queue. A refused request was
    not acted on, so even a delete may go again; a second refusal is returned as it is, for
    the client to raise (``errors.answer_classifier`` words it).
    """

    def __init__(self, tokens: TokenKeeper) -> None:
        self._tokens = tokens

    def sync_auth_flow(self, request: httpx.Request
                       ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("IamAuth fetches tokens asynchronously: use an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request
                              ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await _before_sending(self._tokens.token())
        request.headers[TOKEN_HEADER] = token
        response = yield request
        if response.status_code not in AUTH_STATUSES:
            return
        # The client only sees the answer to the second try, so the first is logged here.
        log.info("%s %s -> %s; renewing the IAM token", request.method, request.url.path,
                 response.status_code)
        request.headers[TOKEN_HEADER] = await _before_sending(self._tokens.renew(token))
        yield request


async def _before_sending(fetch: Awaitable[str]) -> str:
    """The token ``fetch`` gives. Its failure stops a request that has not left (or that
    was refused), so an outage at IAM never reads as a request that may have arrived."""
    try:
        return await fetch
    except TemporaryError as exc:
        exc.sent = False
        raise


class HuaweiTokenProvider(Provider):
    """A provider whose requests carry an IAM token of the connection's user and project.

    Options: ``region``, ``project_id``, ``iam_user``, ``domain_name``, ``base_url`` and
    ``iam_url`` (both default from the region); secret: ``password``.
    """

    default_base_url: ClassVar[str]
    # Options that are ids in paths: 1 to 64 letters, digits, "_" or "-".
    id_options: ClassVar[tuple[tuple[str, str], ...]] = (("project_id", "project ID"),)
    auth_statuses: ClassVar[tuple[int, ...]] = AUTH_STATUSES

    def __init__(self, secrets: Mapping[str, str], options: Mapping[str, str],
                 **kwargs: Any) -> None:
        filled = {k: str(v) for k, v in options.items()}
        region = filled.get("region", "").strip()
        if region and not REGION_PATTERN.fullmatch(region):
            raise PermanentError(f"{self.label}: the region must look like ap-southeast-1")
        for key, pattern in (("base_url", self.default_base_url), ("iam_url", DEFAULT_IAM_URL)):
            if region and not filled.get(key, "").strip():
                filled[key] = pattern.format(region=region)
        super().__init__(secrets, filled, **kwargs)  # checks both URLs
        for key, what in self.id_options:
            if not valid_id(self.options[key]):
                raise PermanentError(
                    f"{self.label}: the {what} must be 1 to 64 letters, digits, '_' or '-'")
        self.login = IamLogin(self.options["iam_url"], self.options["iam_user"],
                              self.options["domain_name"], self.options["project_id"],
                              self.secret("password"))
        self._tokens = TokenKeeper(self.token_cache,
                                   f"{self.cache_key}:{self.login.fingerprint()}", self._issue)
        self._iam: HttpClient | None = None

    def _headers(self) -> dict[str, str]:
        # No token here: IamAuth adds it per request, as it changes while we run.
        return {"Accept": "application/json"}

    def _classifier(self) -> Classifier:
        return answer_classifier(self.label, self.login.user, self.login.domain)

    def _auth(self) -> httpx.Auth:
        return IamAuth(self._tokens)

    async def __aenter__(self) -> Self:
        # IAM is another service: its requests do not draw on the connection's budget.
        self._iam = HttpClient(self.options["iam_url"], label=IAM, policy=self.policy,
                               transport=self._transport, classify=iam_classifier(self.login))
        return await super().__aenter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            if self._iam is not None:
                await self._iam.aclose()
                self._iam = None

    async def _issue(self) -> tuple[str, datetime]:
        if self._iam is None:
            raise RuntimeError("use the provider inside `async with provider:`")
        return await issue_token(self._iam, self.login)
