"""HttpClient's seams, against an in-process transport that answers from a script."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from providers import PermanentError, ProviderError, RateLimited, TemporaryError
from providers.http import HttpClient
from providers.pacing import AdaptiveBudget, Pace
from tests.providers.loopback import policy

T = TypeVar("T")
QUICK = policy(backoff=0.001, retries=2)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport giving ``answers`` in turn (the last one again once they run out)."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers[min(len(sent), len(answers)) - 1]

    return httpx.MockTransport(answer), sent


def client(transport: httpx.MockTransport,
           classify: Callable[[httpx.Response], ProviderError | None] | None = None
           ) -> HttpClient:
    return HttpClient("http://provider.test", label="Provider", policy=QUICK,
                      transport=transport, classify=classify)


def coded(response: httpx.Response) -> ProviderError | None:
    """A provider that puts its own error code in every refusal, 200 included."""
    body = response.json()
    if "code" not in body:
        return None
    kind = TemporaryError if response.status_code >= 500 else PermanentError
    return kind(f"Provider refused: {body['code']}", status=response.status_code)


def test_without_a_hook_answers_are_read_by_status() -> None:
    transport, sent = scripted(httpx.Response(200, json={"code": "E1"}))

    async def go() -> Any:
        async with client(transport) as http:
            return await http.read("GET", "/x")

    assert run(go()) == {"code": "E1"}
    assert len(sent) == 1


def test_the_hook_sees_successes_too_and_its_error_is_raised() -> None:
    transport, sent = scripted(httpx.Response(200, json={"code": "E7"}))

    async def go() -> Any:
        async with client(transport, coded) as http:
            return await http.read("GET", "/x")

    with pytest.raises(PermanentError, match="Provider refused: E7") as caught:
        run(go())
    assert caught.value.status == 200 and len(sent) == 1


def test_a_returned_5xx_error_is_retried_like_a_generic_one_and_keeps_its_wording() -> None:
    busy = httpx.Response(503, json={"code": "BUSY"})
    transport, sent = scripted(busy, busy, httpx.Response(200, json={"ok": True}))

    async def read() -> Any:
        async with client(transport, coded) as http:
            return await http.read("GET", "/x")

    assert run(read()) == {"ok": True}
    assert len(sent) == 3

    transport, sent = scripted(busy)

    async def write() -> Any:
        async with client(transport, coded) as http:
            return await http.write("DELETE", "/x")

    with pytest.raises(TemporaryError, match="Provider refused: BUSY") as caught:
        run(write())
    # A write is not sent again, and a 5xx to it may come after the provider acted.
    assert len(sent) == 1 and caught.value.sent is True


def test_a_cookie_the_provider_sets_is_not_sent_back() -> None:
    # Providers take the key in a header; a session cookie a provider or a gateway hands
    # out is not carried into the connection's later requests.
    transport, sent = scripted(httpx.Response(
        200, json={}, headers={"Set-Cookie": "sid=tracking; Path=/; Max-Age=3600"}))

    async def go() -> None:
        async with client(transport) as http:
            await http.read("GET", "/one")
            await http.read("GET", "/two")

    run(go())
    assert [r.url.path for r in sent] == ["/one", "/two"]
    assert "cookie" not in sent[1].headers


def test_a_provider_client_refuses_a_cookie_set_by_hand() -> None:
    http = client(scripted(httpx.Response(200, json={}))[0])
    jar = http._client.cookies
    with pytest.raises(TypeError, match="keep no cookies"):
        jar.set("sid", "x")
    with pytest.raises(TypeError, match="keep no cookies"):
        jar["sid"] = "x"
    with pytest.raises(TypeError, match="keep no cookies"):
        http._client.cookies = {"sid": "x"}
    assert not jar and jar is not client(scripted()[0])._client.cookies


def test_a_hook_returning_none_leaves_errors_to_the_generic_reading() -> None:
    transport, sent = scripted(httpx.Response(429, json={"detail": "slow down"},
                                              headers={"Retry-After": "30"}))

    async def go() -> Any:
        async with client(transport, lambda response: None) as http:
            return await http.read("GET", "/x")

    with pytest.raises(RateLimited, match="Provider answered 429: slow down") as caught:
        run(go())
    assert caught.value.retry_after == 30 and len(sent) == 1


def test_an_error_the_hook_raises_ends_the_request_without_retries(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="providers.http")
    transport, sent = scripted(httpx.Response(429, text="error code: 1015"),
                               httpx.Response(200, json={}))

    def blocked(response: httpx.Response) -> None:
        if response.status_code == 429:
            raise RateLimited("Provider's front blocked the request", status=429)

    async def go() -> Any:
        async with client(transport, blocked) as http:
            return await http.read("GET", "/x?secret=1")

    with pytest.raises(RateLimited, match="front blocked"):
        run(go())
    assert len(sent) == 1
    assert "GET /x -> 429 in" in caplog.text and "secret" not in caplog.text


@pytest.mark.parametrize("body, parsed", [
    ('{"text": "caf\u00e9 \u2615"}'.encode(), {"text": "caf\u00e9 \u2615"}),
    # Valid JSON a stricter parser may refuse: an escaped lone surrogate (stored later as
    # U+FFFD), a body in UTF-16, and an integer past 64 bits, which must stay exact.
    (b'{"text": "odd \\ud800 here"}', {"text": "odd \ud800 here"}),
    ('{"a": 1}'.encode("utf-16"), {"a": 1}),
    (b'{"id": 18446744073709551616}', {"id": 18446744073709551616}),
])
def test_every_valid_json_body_is_read(body: bytes, parsed: object) -> None:
    from providers.http import body_json

    assert body_json(httpx.Response(200, content=body)) == parsed


def test_a_body_that_is_not_json_says_so() -> None:
    from providers.http import body_json, json_or_none

    response = httpx.Response(502, content=b"<html>Bad gateway</html>")
    assert json_or_none(response) is None
    with pytest.raises(ValueError, match="not JSON"):
        body_json(response)


def test_a_pause_the_budget_keeps_beyond_max_hold_wait_is_raised_not_slept_through() -> None:
    """After a 429 asking for an hour, the next request of the connection is not left
    sleeping in the budget for that hour: it is refused at once, saying how long."""
    transport, sent = scripted(httpx.Response(429, headers={"Retry-After": "3600"}, json={}),
                               httpx.Response(200, json={}))

    async def go() -> RateLimited:
        async with HttpClient("http://provider.test", label="Provider", budget=AdaptiveBudget(5.0),
                              policy=QUICK, transport=transport) as http:
            with pytest.raises(RateLimited):
                await http.read("GET", "/a")
            with pytest.raises(RateLimited) as held:
                await asyncio.wait_for(http.read("GET", "/b"), 5)
            return held.value

    held = run(go())
    assert len(sent) == 1 and held.retry_after and held.retry_after > 3500
    assert "pause of 3600 s" in str(held)


def test_a_rate_limit_a_provider_words_on_another_status_slows_the_pace() -> None:
    """Character.AI's Cloudflare front answers a burst with a 403 (error 1015), which its
    reading calls a rate limit: the budget learns from that, not from the bare status."""
    from providers.characterai.errors import classify_response

    transport, _ = scripted(httpx.Response(403, headers={"Server": "cloudflare",
                                                         "Content-Type": "text/plain"},
                                           text="error code: 1015"))
    budget = AdaptiveBudget(5.0, learned=Pace(rate=5.0, probing=False, limit=5.0))

    async def go() -> None:
        async with HttpClient("http://provider.test", label="Character.AI", budget=budget,
                              policy=QUICK, transport=transport,
                              classify=classify_response) as http:
            with pytest.raises(RateLimited):
                await http.read("GET", "/a")

    run(go())
    assert budget.pace.rate < 5.0 and budget.pace.last_429
