"""The IAM token machinery on its own: when a token is renewed, and how IamAuth sends it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from providers import AuthError, TemporaryError
from providers.http import HttpClient
from providers.koosearch.errors import answer_classifier
from providers.koosearch.iam import IamAuth, TokenKeeper, renew_at
from providers.tokens import MemoryTokenCache
from tests.providers.loopback import policy

T = TypeVar("T")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Iam:
    """Issues "token-1", "token-2", ... living ``lifetime``; or fails with ``failure``."""

    def __init__(self, lifetime: timedelta = timedelta(hours=24),
                 failure: Exception | None = None) -> None:
        self.lifetime = lifetime
        self.failure = failure
        self.issued: list[str] = []

    async def issue(self) -> tuple[str, datetime]:
        if self.failure is not None:
            raise self.failure
        self.issued.append(f"token-{len(self.issued) + 1}")
        return self.issued[-1], datetime.now(UTC) + self.lifetime


def provider_answering(*statuses: int) -> tuple[httpx.MockTransport, list[str]]:
    """A provider answering ``statuses`` in turn (then 200), noting the token of each."""
    tokens: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers.get("X-Auth-Token", ""))
        status = statuses[len(tokens) - 1] if len(tokens) <= len(statuses) else 200
        if status == 200:
            return httpx.Response(200, json={"records": []})
        return httpx.Response(status, json={"error_code": "APIGW.0301",
                                            "error_msg": "token expired"})

    return httpx.MockTransport(answer), tokens


def client(transport: httpx.MockTransport, keeper: TokenKeeper) -> HttpClient:
    return HttpClient("http://koosearch.test", label="KooSearch",
                      policy=policy(backoff=0.001), transport=transport,
                      classify=answer_classifier("KooSearch", "lethe", "acme"),
                      auth=IamAuth(keeper))


def read(http: HttpClient) -> Any:
    async def go() -> Any:
        async with http:
            return await http.read("GET", "/chats")
    return run(go())


def test_renewal_comes_five_minutes_early_or_at_a_tenth_of_a_short_life() -> None:
    day = NOW + timedelta(hours=24)
    assert renew_at(day, NOW) == day - timedelta(minutes=5)
    three_minutes = NOW + timedelta(minutes=3)
    assert renew_at(three_minutes, NOW) == three_minutes - timedelta(seconds=18)
    assert renew_at(NOW - timedelta(seconds=1), NOW) == NOW - timedelta(seconds=1)


def test_the_cache_keeps_a_token_until_its_renewal_time() -> None:
    cache, iam = MemoryTokenCache(), Iam(lifetime=timedelta(minutes=3))
    keeper = TokenKeeper(cache, "c", iam.issue)
    before = datetime.now(UTC)
    assert run(keeper.token()) == "token-1"
    cached = cache.get("c")
    assert cached is not None and cached[0] == "token-1"
    # Three minutes less a tenth of them: 162 s after issue, not 3 min - 5 min (never).
    assert timedelta(seconds=161) < cached[1] - before < timedelta(seconds=163)
    assert run(keeper.token()) == "token-1" and iam.issued == ["token-1"]


def test_a_refused_token_is_renewed_once_and_the_request_sent_again() -> None:
    transport, tokens = provider_answering(401)
    iam = Iam()
    assert read(client(transport, TokenKeeper(MemoryTokenCache(), "c", iam.issue))) == {
        "records": []}
    assert tokens == ["token-1", "token-2"] and iam.issued == ["token-1", "token-2"]


@pytest.mark.parametrize(("status", "wording"), [
    (401, "KooSearch refused a freshly issued IAM token of user lethe in account acme: "
          "APIGW.0301 from Huawei API Gateway: token expired"),
    (403, "KooSearch: forbidden: the IAM user lacks KooSearch permissions (APIGW.0301 from "
          "Huawei API Gateway: token expired)"),
])
def test_a_second_refusal_is_an_auth_error_without_a_third_token(status: int,
                                                                  wording: str) -> None:
    transport, tokens = provider_answering(status, status, status)
    iam = Iam()
    with pytest.raises(AuthError) as caught:
        read(client(transport, TokenKeeper(MemoryTokenCache(), "c", iam.issue)))
    assert str(caught.value) == wording and caught.value.status == status
    assert tokens == ["token-1", "token-2"]


def test_a_token_another_request_already_renewed_is_used_as_is() -> None:
    cache, iam = MemoryTokenCache(), Iam()
    keeper = TokenKeeper(cache, "c", iam.issue)
    assert run(keeper.token()) == "token-1"
    assert run(keeper.renew("token-1")) == "token-2"
    assert run(keeper.renew("token-1")) == "token-2"  # a late refusal of the old token
    assert iam.issued == ["token-1", "token-2"]


def test_an_iam_outage_stops_the_request_as_one_that_never_left() -> None:
    transport, tokens = provider_answering()
    lost = TemporaryError("Huawei IAM: the connection timed out (ReadTimeout)", sent=True)
    keeper = TokenKeeper(MemoryTokenCache(), "c", Iam(failure=lost).issue)

    async def delete() -> Any:
        async with client(transport, keeper) as http:
            return await http.write("DELETE", "/chats/batch", json_body={"chat_ids": ["a"]})

    with pytest.raises(TemporaryError) as caught:
        run(delete())
    assert caught.value.sent is False and tokens == []


def test_iam_auth_refuses_a_synchronous_client() -> None:
    keeper = TokenKeeper(MemoryTokenCache(), "c", Iam().issue)
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)),
                      auth=IamAuth(keeper)) as sync, pytest.raises(RuntimeError, match="async"):
        sync.get("http://koosearch.test/chats")
