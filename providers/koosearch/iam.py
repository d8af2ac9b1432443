"""Huawei IAM tokens, and the part of the KooSearch client that sends them (§3.4).

A project-scoped IAM user token comes from ``POST {iam_url}/v3/auth/tokens`` with the user's
password (HTTP 201, the token in ``X-Subject-Token``, ``token.expires_at`` in the body) and
goes in ``X-Auth-Token``. It is never logged and never put in an exception message.

- ``issue_token``: a 401 is the password refused; the message names the user and the
  account, never the password. IAM's error body is UNCONFIRMED: Keystone's ``{"error":
  {"code", "message", "title"}}`` and Huawei's ``{"error_code", "error_msg"}`` are read.
- ``TokenKeeper`` shares one token between the provider instances of a connection through
  its ``TokenCache``, until five minutes before ``expires_at``. The key is ``cache_key``
  plus a digest of IAM endpoint, user, account and project, so that after the connection
  is edited a token issued for the old ones is not reused.
- ``TokenTransport`` puts the token on each request and notes Huawei's error code: the
  shared ``HttpClient`` takes fixed headers and returns only parsed bodies. Both travel in
  context variables, which each asyncio task has its own copy of, so requests running
  side by side never see each other's token or error.
- ``HuaweiTokenProvider`` ties them together: a 401 or 403 drops the token, one new token
  is fetched and the request sent once more (a refused request was not acted on, so even a
  delete may go again); a second refusal is an AuthError. 403 is included because a token
  keeps the roles it was issued with: permissions granted since need a new token.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

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
from ..http import error_text, parse_retry_after
from ..tokens import TokenCache

log = logging.getLogger("providers.koosearch")

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a path, not a password  # nosec B105
# A token is renewed this long before IAM says it expires, so no request races its expiry.
RENEW_BEFORE = timedelta(minutes=5)
# IAM documents 24 h; used only when the answer does not say (UNCONFIRMED shape).
DEFAULT_LIFETIME = timedelta(hours=24)
_RETRY = frozenset({408, 500, 502, 503, 504})
DEFAULT_IAM_URL = "https://iam.{region}.myhuaweicloud.com"
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
REGION_PATTERN = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,4}")

# The token the current task sends, and the last KooSearch refusal it received:
# (HTTP status, error_code, error_msg).
REQUEST_TOKEN: ContextVar[str] = ContextVar("koosearch_token", default="")
LAST_REFUSAL: ContextVar[tuple[int, str, str] | None] = ContextVar(
    "koosearch_refusal", default=None
)


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


def huawei_error(body: Any) -> tuple[str, str] | None:
    """(code, message) from a Huawei error body: one object, an array of them, or Keystone's
    ``{"error": {...}}``; None when the body is none of these."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict):
        body = {"error_code": body["error"].get("code"), "error_msg":
                body["error"].get("message") or body["error"].get("title")}
    code, message = body.get("error_code"), body.get("error_msg")
    if not isinstance(message, str) or not message.strip():
        return None
    # Keystone's numeric code only repeats the HTTP status; Huawei's codes say more.
    code_text = code.strip()[:40] if isinstance(code, str) else ""
    return code_text, message.strip()[:300]


def _parse(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _expiry(response: httpx.Response) -> datetime:
    try:
        moment = datetime.fromisoformat(_parse(response)["token"]["expires_at"].strip())
    except (AttributeError, KeyError, TypeError, ValueError):
        return datetime.now(UTC) + DEFAULT_LIFETIME
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _refusal(response: httpx.Response, login: IamLogin) -> Exception:
    found = huawei_error(_parse(response))
    reason = (f"{found[1]} ({found[0]})" if found[0] else found[1]) if found else \
        error_text(response)
    status = response.status_code
    who = f"user {login.user} in account {login.domain}"
    if status == 401:
        return AuthError(f"Huawei IAM refused the password for {who}: {reason}", status=status)
    if status == 403:
        return AuthError(f"Huawei IAM refused a token to {who}: {reason}", status=status)
    if status == 429:
        return RateLimited(f"Huawei IAM asked to slow down: {reason}",
                           retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        return TemporaryError(f"Huawei IAM answered {status}: {reason}", status=status)
    return PermanentError(
        f"Huawei IAM refused a token for {who} and project {login.project_id}: {reason}",
        status=status,
    )


async def issue_token(client: httpx.AsyncClient, login: IamLogin, *, retries: int,
                      backoff: float, max_retry_wait: float) -> tuple[str, datetime]:
    """A new token and its expiry. Asking twice is harmless (IAM does not revoke the older
    token), so outages and 5xx are retried like reads."""
    attempt = 0
    while True:
        started = time.monotonic()
        wait: float | None = None
        try:
            # nocatalog: the service catalog is large and not needed.
            response = await client.post(TOKEN_PATH, params={"nocatalog": "true"},
                                         json=login.body())
        except httpx.TransportError as exc:
            _log(None, started, type(exc).__name__)
            if attempt >= retries:
                raise TemporaryError(
                    f"Huawei IAM: the connection failed ({type(exc).__name__})") from None
            wait = random.uniform(0, backoff * 2**attempt)
        except httpx.RequestError as exc:
            raise ProtocolError(
                f"Huawei IAM sent a response that could not be read ({type(exc).__name__})"
            ) from None
        else:
            _log(response.status_code, started)
            if response.is_success:
                token = response.headers.get("X-Subject-Token", "").strip()
                if not token:
                    raise ProtocolError("Huawei IAM answered without an X-Subject-Token header")
                return token, _expiry(response)
            refusal = _refusal(response, login)
            if attempt < retries and isinstance(refusal, RateLimited):
                wait = refusal.retry_after if refusal.retry_after is not None else backoff
                wait = wait if wait <= max_retry_wait else None
            elif attempt < retries and response.status_code in _RETRY:
                wait = random.uniform(0, backoff * 2**attempt)
            if wait is None:
                raise refusal
        await asyncio.sleep(wait)
        attempt += 1


def _log(status: int | None, started: float, failure: str = "") -> None:
    log.info("POST %s -> %s in %.0f ms", TOKEN_PATH, status if status is not None else failure,
             (time.monotonic() - started) * 1000)


class TokenKeeper:
    """The connection's token: from the shared cache while fresh, else from IAM."""

    def __init__(self, cache: TokenCache, key: str,
                 issue: Callable[[], Awaitable[tuple[str, datetime]]]) -> None:
        self._cache = cache
        self._key = key
        self._issue = issue
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> str | None:
        cached = self._cache.get(self._key)
        if cached and cached[1] - RENEW_BEFORE > datetime.now(UTC):
            return cached[0]
        return None

    def _locked(self) -> asyncio.Lock:
        # Created on first use so it belongs to the running event loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _new(self) -> str:
        token, expires_at = await self._issue()
        self._cache.set(self._key, token, expires_at)
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


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; one context serves every client.
    return httpx.create_ssl_context()


def default_transport(url: str) -> httpx.AsyncBaseTransport:
    """What httpx would build itself, proxies from the environment included: httpx reads
    HTTP(S)_PROXY only for clients that were given no transport."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
        proxy = None
    return httpx.AsyncHTTPTransport(verify=_ssl_context(), proxy=proxy)


class TokenTransport(httpx.AsyncBaseTransport):
    """Adds the task's token to each request and notes the code of every refusal."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = REQUEST_TOKEN.get()
        if token:
            request.headers["X-Auth-Token"] = token
        response = await self._inner.handle_async_request(request)
        if response.status_code >= 400:
            await response.aread()
            found = huawei_error(_parse(response))
            LAST_REFUSAL.set((response.status_code, *found) if found else None)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class HuaweiTokenProvider(Provider):
    """A provider whose requests carry an IAM token of the connection's user and project.

    Options: ``region``, ``project_id``, ``iam_user``, ``domain_name``, ``base_url`` and
    ``iam_url`` (both default from the region); secret: ``password``.
    """

    default_base_url: ClassVar[str]
    # Options that are ids in paths: 1 to 64 letters, digits, "_" or "-".
    id_options: ClassVar[tuple[tuple[str, str], ...]] = (("project_id", "project ID"),)
    auth_statuses: ClassVar[tuple[int, ...]] = (401, 403)

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
        self._given_transport = self._transport
        self._iam: httpx.AsyncClient | None = None

    def _headers(self) -> dict[str, str]:
        # No token here: TokenTransport adds it per request, as it changes while we run.
        return {"Accept": "application/json"}

    async def __aenter__(self) -> Self:
        inner = self._given_transport or default_transport(self.options["base_url"])
        self._transport = TokenTransport(inner)
        self._iam = httpx.AsyncClient(
            base_url=self.options["iam_url"],
            transport=self._given_transport or default_transport(self.options["iam_url"]),
            timeout=httpx.Timeout(self.policy.timeout,
                                  connect=min(self.policy.timeout, self.policy.connect_timeout)),
            follow_redirects=False,
        )
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
        return await issue_token(self._iam, self.login, retries=self.policy.retries,
                                 backoff=self.policy.backoff,
                                 max_retry_wait=self.policy.max_retry_wait)

    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None, write: bool = False) -> Any:
        """Parsed JSON of one request; a refused token is renewed once."""
        token = await self._tokens.token()
        try:
            return await self._send(token, method, path, params, body, write)
        except AuthError as exc:
            if exc.status not in (401, 403):
                raise
        token = await self._tokens.renew(token)
        try:
            return await self._send(token, method, path, params, body, write)
        except AuthError as exc:
            if exc.status == 401:
                exc.message = (f"{self.label} refused a freshly issued IAM token of user "
                               f"{self.login.user} in account {self.login.domain}: "
                               + exc.message.split(": ", 1)[-1])
                exc.args = (exc.message,)
            raise

    async def _send(self, token: str, method: str, path: str,
                    params: Mapping[str, str] | None, body: Any, write: bool) -> Any:
        # Reset afterwards so that the token does not linger in the caller's context.
        token_mark, refusal_mark = REQUEST_TOKEN.set(token), LAST_REFUSAL.set(None)
        send = self.http.write if write else self.http.read
        try:
            data = await send(method, path, json_body=body, params=params)
        except ProviderError as exc:
            raise self._explain(exc) from None
        finally:
            REQUEST_TOKEN.reset(token_mark)
            LAST_REFUSAL.reset(refusal_mark)
        found = huawei_error(data) if isinstance(data, dict) and "error_code" in data else None
        if found:
            raise PermanentError(f"{self.label} refused the request: {found[0]} {found[1]}",
                                 status=200)
        return data

    def _explain(self, exc: ProviderError) -> ProviderError:
        """Put Huawei's error code into the message, and say who refused."""
        if exc.status is None:
            return exc
        refusal = LAST_REFUSAL.get()
        if refusal is None or refusal[0] != exc.status:
            detail = exc.message.split(": ", 1)[-1]
        else:
            code, text = refusal[1], refusal[2]
            # APIGW codes come from the gateway in front of the service (a wrong endpoint, an
            # unpublished API, throttling), not from the service itself.
            source = " from Huawei API Gateway" if code.upper().startswith("APIGW") else ""
            detail = f"{code}{source}: {text}" if code else text
        if exc.status == 403:
            exc.message = (f"{self.label}: forbidden: the IAM user lacks {self.label} "
                           f"permissions ({detail})")
        else:
            exc.message = f"{self.label} answered {exc.status}: {detail}"
        exc.args = (exc.message,)
        return exc
