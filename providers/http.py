"""The HTTP layer every provider speaks through: timeouts, retries, rate budget, safe logs.

Reads and writes are treated differently on purpose. A read can be repeated freely, so
408/429/5xx answers and dropped connections are retried with exponential backoff and
jitter. A write (an erase) is retried only when the provider certainly did not act on it:
a connection that was never opened, or a 429. Once the request may have reached the
provider, a failure raises ``TemporaryError(sent=True)`` so the caller reads back before
sending again; otherwise a retry could delete the same item twice.

Logs carry method, path (never the query), status and elapsed time; never headers, bodies
or the host, because a base URL may carry credentials.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

from .errors import (
    AuthError,
    NotFound,
    PermanentError,
    ProtocolError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from .meter import Meter

log = logging.getLogger("providers.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# How early before its slot a budget grants a request (seconds). asyncio's timers wake up to
# a millisecond late (epoll waits whole milliseconds), and a budget granting only at or after
# the slot would carry each late wake-up into every later slot: a millisecond a request, 1 %
# of a 10 requests/s budget. Granted up to this early, a waiter sleeps until just before
# its slot and the schedule keeps to its rate. It takes one millisecond of the ~30 ms a
# second that pacing under the limit leaves for network jitter (dashboard/lib/ratebudget.py).
EARLY = 0.001
# The longest a Retry-After is taken at its word (seconds); a provider asking for longer
# (or forever) is asked again after this. A job waits, and says until when.
MAX_RETRY_AFTER = 24 * 3600.0
DEFAULT_ERROR_KEYS = ("ERROR", "API_ERROR", "INTERNAL_ERROR", "error", "message", "detail")

# A provider's own reading of an answer; see HttpClient.
Classifier = Callable[[httpx.Response], ProviderError | None]

# Failures that happen before a single byte of the request left this process.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


@dataclass(frozen=True)
class HttpPolicy:
    """How patient one connection's HTTP clients are; one value travels from the settings
    through the provider to each client it opens. Times are in seconds.

    ``retries`` is how many times a failed request may be sent again; the wait before retry
    n (counting from 0) is drawn between 0 and ``backoff * 2**n``, at most ``max_backoff``.
    A 429 whose Retry-After asks for longer than ``max_retry_wait`` is raised as RateLimited
    at once, so the job pauses rather than a worker sleeping through it. A pause the
    connection's budget keeps for every request (another request's Retry-After, a spent
    rate-limit window) is waited out up to ``max_hold_wait``, and raised beyond it.
    """

    timeout: float = 15.0
    connect_timeout: float = 10.0  # at most ``timeout``
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_wait: float = 5.0
    max_hold_wait: float = 60.0
    # Hosts, patterns or networks an admin allowed beyond the provider's own (see hosts.py).
    allowed_hosts: tuple[str, ...] = ()


class Held(Exception):
    """The budget holds every request for ``seconds`` more (the provider asked for a pause):
    longer than the caller will wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"held for {seconds:.0f} s")
        self.seconds = seconds


class RateBudget:
    """In-process GCRA bucket shared by every request of one connection.

    A slot is granted only when the caller is about to send: ``acquire`` takes one if the
    bucket conforms now, else sleeps until it may and asks again. Granting at send time
    (rather than reserving a slot ahead and sleeping towards it) means a caller that wakes
    late, because its loop or the GIL was busy, pushes the later ones back instead of
    squeezing two requests closer together than the limit. Works from any thread or event
    loop. A shared budget (Redis) subclasses this and overrides ``_take``. A request may
    go up to ``EARLY`` before its slot, never later ones closer than that.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tat = 0.0  # theoretical arrival time of the next request (monotonic)
        self._lock = threading.Lock()

    @property
    def window(self) -> float:
        """How far ahead of its theoretical time a request may be granted."""
        return (self.burst - 1) / self.rate

    def _take(self) -> float:
        """0.0 with a slot taken, or the seconds until one may be free (nothing taken)."""
        with self._lock:
            now = time.monotonic()
            interval = 1.0 / self.rate
            tat = max(self._tat, now)
            early = tat - self.window - now
            if early > EARLY:
                return early - EARLY
            self._tat = tat + interval
            return 0.0

    async def acquire(self, patience: float | None = None) -> None:
        """Wait for a slot. ``patience``: raise Held rather than wait out a hold (a
        Retry-After an adaptive budget keeps) longer than this; a fixed budget has none."""
        while (wait := self._take()) > 0:
            await asyncio.sleep(wait)

    def observe(self, granted: float, status: int | None, headers: Mapping[str, str],
                elapsed: float) -> None:
        """What became of a request granted at ``granted`` (wall clock): its status (None
        when no answer came), headers (lower-case names) and seconds taken. A fixed budget
        ignores it; an adaptive one (``providers.pacing``) learns its rate from it."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most
    MAX_RETRY_AFTER; None when it says nothing usable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else min(max(0.0, seconds), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER)


_PARSED = "_lethe_json"
_NOT_JSON = object()


def body_json(response: httpx.Response) -> Any:
    """The response body as JSON, parsed once however many layers look at it (a provider's
    ``classify`` hook reads the answer, then the client returns it); ValueError if it is not
    JSON."""
    parsed = vars(response).get(_PARSED, _PARSED)
    if parsed is _PARSED:
        try:
            parsed = response.json()
        except ValueError:
            parsed = _NOT_JSON
        setattr(response, _PARSED, parsed)
    if parsed is _NOT_JSON:
        raise ValueError("the body is not JSON")
    return parsed


def json_or_none(response: httpx.Response) -> Any:
    """``body_json``, or None when the body is not JSON (a gateway's HTML page, say)."""
    try:
        return body_json(response)
    except ValueError:
        return None


def error_text(response: httpx.Response, keys: Collection[str] = DEFAULT_ERROR_KEYS) -> str:
    """The provider's own explanation from an error body, trimmed; never the request."""
    body = json_or_none(response)
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
            if isinstance(value, dict | list) and value:
                return json.dumps(value)[:300]
    # Never the raw body: whatever answered (a gateway, or a host that is no provider at all)
    # may put anything there, and it would end up on a page.
    return response.reason_phrase or f"HTTP {response.status_code}"


def classify(
    response: httpx.Response,
    *,
    label: str,
    keys: Collection[str] = DEFAULT_ERROR_KEYS,
    auth_statuses: Collection[int] = (401, 403),
    message: str = "",
) -> ProviderError:
    """Map an error response onto the provider error hierarchy by its status. ``message``
    is the sentence to raise with when the provider words it itself; by default it quotes
    the provider's explanation found under ``keys``."""
    status = response.status_code
    message = message or f"{label} answered {status}: {error_text(response, keys)}"
    if status in auth_statuses:
        return AuthError(message, status=status)
    if status == 404:
        return NotFound(message, status=status)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(message, retry_after=retry_after, status=status)
    if status >= 500 or status == 408:
        return TemporaryError(message, status=status)
    return PermanentError(message, status=status)


class _NoCookies(httpx.Cookies):
    """A jar that stays empty (see ``_Client``): what answers set is dropped, and setting a
    cookie by hand is a mistake that says so."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("provider clients keep no cookies")

    def update(self, cookies: Any = None) -> None:  # type: ignore[override]  # as httpx
        raise TypeError("provider clients keep no cookies")


class _Client(httpx.AsyncClient):
    """httpx's client without a cookie jar. Providers are called with the key in a header;
    a cookie one of them (or a gateway before it) sets is not carried into later requests
    of the connection, so what Lethe sends is only what it means to. Not filling a jar also
    saves reading every answer's headers into one (5 % of a sync's processor time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()  # httpx reads the jar only through ``cookies``

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("provider clients keep no cookies")


class HttpClient:
    """One httpx.AsyncClient plus the retry, budget and logging policy of a connection.

    ``classify`` is the provider's own reading of its answers, for providers whose status
    codes do not tell the whole story. It is called with every response, successes
    included (a 200 may carry a refusal), before the generic reading by status, and:

    - returns None to leave the answer to the generic reading;
    - returns the ProviderError the answer means, which then meets the same rules as the
      generic one: 408/5xx retried on reads, a 429 waited out when Retry-After allows, a
      5xx to a write marked as possibly acted on. So a provider can word an answer
      (its own error codes, say) without losing the retries;
    - or raises a ProviderError, which ends the request as it is, with no retry: for
      answers the provider knows are not worth repeating soon.

    Every response is logged before the hook sees it, so its errors are logged like others.

    ``auth`` (an httpx.Auth) is for credentials that change while the client lives, such as
    a token that must be fetched and renewed. httpx runs it inside each send, after the
    rate budget granted the request, so a token is never taken and then left to age in the
    queue; only the answer its flow ends with reaches the retry rules and ``classify``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        label: str,
        policy: HttpPolicy = HttpPolicy(),
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RateBudget | None = None,
        error_keys: Collection[str] = DEFAULT_ERROR_KEYS,
        auth_statuses: Collection[int] = (401, 403),
        classify: Classifier | None = None,
        auth: httpx.Auth | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.label = label
        # Every request that leaves is counted, retries included (what a provider counts).
        self.meter = meter or Meter()
        self.policy = policy
        self.budget = budget
        self.error_keys = error_keys
        self.auth_statuses = auth_statuses
        self._classify = classify
        self._client = _Client(
            base_url=base_url,
            headers=dict(headers or {}),
            transport=transport,
            auth=auth,
            timeout=httpx.Timeout(policy.timeout,
                                  connect=min(policy.timeout, policy.connect_timeout)),
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def read(self, method: str, path: str, *, json_body: Any = None,
                   params: Mapping[str, str] | None = None) -> Any:
        """A request with no side effect at the provider: retried, returns parsed JSON."""
        return self._parse(await self.request(method, path, json_body=json_body,
                                              params=params))

    async def write(self, method: str, path: str, *, json_body: Any = None,
                    params: Mapping[str, str] | None = None) -> Any:
        """A request that changes state: never re-sent once it may have arrived."""
        return self._parse(await self.request(method, path, json_body=json_body,
                                              params=params, write=True))

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: Mapping[str, str] | None = None,
                      write: bool = False) -> httpx.Response:
        """The successful response itself, for a caller that needs more than its JSON (a
        header, say); sent, retried and refused exactly as by ``read`` or ``write``."""
        return await self._request(method, path, json_body, params, write=write)

    def _delay(self, attempt: int) -> float:
        # Full jitter keeps many workers sharing one key from retrying in lockstep.
        policy = self.policy
        return random.uniform(0, min(policy.max_backoff, policy.backoff * 2**attempt))

    async def _request(self, method: str, path: str, json_body: Any,
                       params: Mapping[str, str] | None, *, write: bool) -> httpx.Response:
        attempt = 0
        while True:
            if self.budget is not None:
                try:
                    await self.budget.acquire(patience=self.policy.max_hold_wait)
                except Held as held:
                    # A pause the provider asked for, too long to sleep through: as a 429
                    # with that Retry-After would be (see HttpPolicy).
                    raise RateLimited(
                        f"{self.label} asked for a pause of {held.seconds:.0f} s before the "
                        "next request", retry_after=held.seconds, status=None) from None
            granted = time.time()
            started = time.monotonic()
            try:
                response = await self._client.request(
                    method, path, json=json_body, params=params
                )
            except httpx.TransportError as exc:
                if self.budget is not None:
                    self.budget.observe(granted, None, {}, time.monotonic() - started)
                sent = not isinstance(exc, _NOT_SENT)
                if sent:
                    self.meter.sent(None)
                self._log(method, path, None, started, type(exc).__name__)
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                if (write and sent) or attempt >= self.policy.retries:
                    raise TemporaryError(
                        f"{self.label}: the connection {kind} ({type(exc).__name__})", sent=sent
                    ) from None
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            except httpx.RequestError as exc:
                # A body that could not be decoded (bad gzip, bad charset) or similar.
                self.meter.sent(None)
                self._log(method, path, None, started, type(exc).__name__)
                raise ProtocolError(
                    f"{self.label} sent a response that could not be read ({type(exc).__name__})"
                ) from None
            self._log(method, path, response.status_code, started)
            self.meter.sent(response.status_code)
            elapsed = time.monotonic() - started
            # The budget learns from what the answer means, not only its status: a
            # provider may word a rate limit on a 403 (Cloudflare's 1015, say).
            try:
                refusal = self._refusal(response)
            except ProviderError as exc:
                self._observe(granted, exc, response, elapsed)
                raise
            self._observe(granted, refusal, response, elapsed)
            if refusal is None:
                return response
            wait = self._retry_wait(response, refusal, attempt, write=write)
            if wait is None:
                if isinstance(refusal, TemporaryError) and write:
                    # A 5xx to a write may come after the provider acted on it.
                    refusal.sent = True
                raise refusal
            await asyncio.sleep(wait)
            attempt += 1

    def _observe(self, granted: float, refusal: ProviderError | None,
                 response: httpx.Response, elapsed: float) -> None:
        if self.budget is not None:
            status = 429 if isinstance(refusal, RateLimited) else response.status_code
            self.budget.observe(granted, status, response.headers, elapsed)

    def _refusal(self, response: httpx.Response) -> ProviderError | None:
        """The error an answer means, or None for a success; the provider's hook reads it
        first (and may raise)."""
        if self._classify is not None and (error := self._classify(response)) is not None:
            return error
        if response.is_success:
            return None
        return classify(response, label=self.label, keys=self.error_keys,
                        auth_statuses=self.auth_statuses)

    def _retry_wait(self, response: httpx.Response, error: ProviderError, attempt: int,
                    *, write: bool) -> float | None:
        """How long to wait before trying again, or None to raise ``error`` now."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.policy.retries:
            return None
        if isinstance(error, RateLimited):
            # A 429 means the provider refused the request, so even a write may be re-sent.
            wait = error.retry_after if error.retry_after is not None else self._delay(attempt)
            return wait if wait <= self.policy.max_retry_wait else None
        if write:
            return None
        return self._delay(attempt)

    def _parse(self, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return body_json(response)
        except ValueError:
            raise ProtocolError(
                f"{self.label} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None

    @staticmethod
    def _log(method: str, path: str, status: int | None, started: float,
             failure: str = "") -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info(
            "%s %s -> %s in %.0f ms",
            method, path.split("?", 1)[0], status if status is not None else failure, elapsed_ms,
        )
