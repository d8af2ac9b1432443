"""KooSearchProvider logging in to Huawei IAM: tokens cached, renewed and refused."""

from __future__ import annotations

import asyncio
import time

import pytest

from providers import AuthError, RateBudget, RateLimited
from providers.fakes.base import FakeResponse, FakeServer
from providers.fakes.koosearch import DEMO_DOMAIN, DEMO_PASSWORD, DEMO_USER, KooSearchFake
from providers.tokens import MemoryTokenCache
from tests.providers.koosearch_helpers import (
    TOKENS,
    chats_path,
    check,
    erase,
    intercept,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    run,
    targets_of,
)


def test_a_cached_token_serves_two_instances_sharing_one_cache(
    server: FakeServer, fake: KooSearchFake
) -> None:
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="conn-1")))
    run(check(make(server, fake, token_cache=cache, cache_key="conn-1")))
    assert fake.count("POST", TOKENS) == 1
    run(check(make(server, fake, token_cache=cache, cache_key="conn-2")))
    assert fake.count("POST", TOKENS) == 2


def test_a_token_living_less_than_the_five_minute_margin_is_still_shared(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.token_ttl = 180  # renewed when a tenth of its life is left, not five minutes
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    assert fake.count("POST", TOKENS) == 1


def test_a_token_is_replaced_before_use_once_a_tenth_of_its_life_is_left(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.token_ttl = 1.0
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    time.sleep(0.95)  # past 0.9 s, the renewal time, before the fake expires it at 1 s
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    assert fake.count("POST", TOKENS) == 2
    # The old token was never sent, so nothing was refused and sent again.
    assert fake.count("GET", chats_path(fake)) == 2


class SlowFirstBudget(RateBudget):
    """A budget whose first grant comes only after ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        super().__init__(1000, 1000)
        self.pause = pause

    async def acquire(self, patience: float | None = None) -> None:
        pause, self.pause = self.pause, 0.0
        await asyncio.sleep(pause)
        await super().acquire()


def test_the_token_is_taken_after_the_wait_in_the_rate_budget(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.token_ttl = 1.0
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    # The cached token expires while the next request waits for its slot: it must leave
    # with a new one rather than the token it would have taken before waiting.
    run(check(make(server, fake, token_cache=cache, cache_key="c",
                   budget=SlowFirstBudget(1.1))))
    assert fake.count("POST", TOKENS) == 2
    assert fake.count("GET", chats_path(fake)) == 2


def test_an_expired_token_is_renewed_once_and_the_request_sent_again(
    server: FakeServer, fake: KooSearchFake
) -> None:
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    fake.expire_tokens()
    targets = targets_of(fake, fake.chat_ids()[:2])
    outcomes = run(erase(make(server, fake, token_cache=cache, cache_key="c"), targets))
    assert [o.status for o in outcomes] == ["erased", "erased"]
    assert fake.count("POST", TOKENS) == 2
    assert [fake.deletes[t.provider_id] for t in targets] == [1, 1]


def test_a_delete_refused_with_401_is_sent_once_more_with_a_new_token(
    server: FakeServer, fake: KooSearchFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = targets_of(fake, fake.chat_ids()[:2])
    refused: list[str] = []

    def first_delete_expired(method: str, path: str, body: bytes) -> FakeResponse | None:
        if method == "DELETE" and not refused:
            refused.append(path)
            return fake.error(401, "Incorrect IAM authentication information: token expired")
        return None

    intercept(monkeypatch, fake, first_delete_expired)
    outcomes = run(erase(make(server, fake), targets))
    assert [o.status for o in outcomes] == ["erased", "erased"]
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 2
    assert fake.count("POST", TOKENS) == 2
    assert [fake.deletes[t.provider_id] for t in targets] == [1, 1]


def test_a_second_401_after_renewal_is_an_auth_error(
    server: FakeServer, fake: KooSearchFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    intercept(monkeypatch, fake, lambda method, path, body: None if path == TOKENS else
              fake.error(401, "Incorrect IAM authentication information: token expired"))
    with pytest.raises(AuthError, match="freshly issued IAM token") as caught:
        run(check(make(server, fake)))
    assert "APIGW.0301" in str(caught.value)
    assert fake.count("POST", TOKENS) == 2
    assert fake.count("GET", chats_path(fake)) == 2


@pytest.mark.parametrize("style", ["keystone", "huawei"])
def test_a_refused_password_names_user_and_account_but_not_the_password(
    server: FakeServer, fake: KooSearchFake, style: str
) -> None:
    fake.iam_error_style = style  # type: ignore[assignment]
    with pytest.raises(AuthError) as caught:
        run(check(make(server, fake, password="Wrong-Secret-123")))
    message = str(caught.value)
    assert message.startswith(f"Huawei IAM refused the password for user {DEMO_USER} in "
                              f"account {DEMO_DOMAIN}: The username or password is wrong.")
    assert "Wrong-Secret-123" not in message and DEMO_PASSWORD not in message
    assert fake.count("GET", chats_path(fake)) == 0


def test_iam_outages_are_retried_and_a_long_wait_is_rate_limited(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.fail_next(2, 503, path=TOKENS)
    run(check(make(server, fake, retries=2)))
    assert fake.count("POST", TOKENS) == 3
    fake.retry_after = 30
    fake.fail_next(1, 429, path=TOKENS)
    with pytest.raises(RateLimited, match="Huawei IAM") as caught:
        run(check(make(server, fake)))
    assert caught.value.retry_after == 30


def test_revoked_credentials_end_in_an_auth_error(server: FakeServer, fake: KooSearchFake
                                                  ) -> None:
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    fake.revoke_credentials()
    with pytest.raises(AuthError, match="refused the password"):
        run(check(make(server, fake, token_cache=cache, cache_key="c")))


def test_403_renews_the_token_once_then_says_the_user_lacks_permissions(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.fail_next(2, 403, path=chats_path(fake))
    with pytest.raises(AuthError, match="lacks Huawei Cloud KooSearch permissions") as caught:
        run(check(make(server, fake)))
    assert "APIGW.0302" in str(caught.value) and caught.value.status == 403
    assert (fake.count("POST", TOKENS), fake.count("GET", chats_path(fake))) == (2, 2)
    fake.fail_next(1, 403, path=chats_path(fake))
    run(check(make(server, fake)))  # permissions granted since the token was issued


def test_a_token_is_reused_only_for_the_same_iam_endpoint_user_and_project(
    server: FakeServer, fake: KooSearchFake
) -> None:
    cache = MemoryTokenCache()
    run(check(make(server, fake, token_cache=cache, cache_key="c")))
    other_host = server.url.replace("127.0.0.1", "localhost")
    run(check(make(server, fake, token_cache=cache, cache_key="c",
                   options={"iam_url": other_host})))
    assert fake.count("POST", TOKENS) == 2
