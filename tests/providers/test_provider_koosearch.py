"""KooSearchProvider against the KooSearch + IAM fake over a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pytest

from providers import (
    Account,
    AuthError,
    Character,
    Conversation,
    HttpPolicy,
    Message,
    NotFound,
    PermanentError,
    ProtocolError,
    RateBudget,
    RateLimited,
    Target,
    TemporaryError,
)
from providers.fakes.base import FakeResponse, FakeServer
from providers.fakes.koosearch import DEMO_DOMAIN, DEMO_PASSWORD, DEMO_USER, KooSearchFake
from providers.koosearch.client import INVALID_ID, NOT_DELETED, SOFT_DELETED, KooSearchProvider
from providers.records import Outcome
from providers.tokens import MemoryTokenCache

T = TypeVar("T")
TOKENS = "/v3/auth/tokens"


def make_fake() -> KooSearchFake:
    return KooSearchFake(seed=5, repos=2, chats=6, latency=0.001)


def make(server: FakeServer, fake: KooSearchFake, password: str = DEMO_PASSWORD,
         options: Mapping[str, str] | None = None, *, retries: int = 2, **kwargs: Any
         ) -> KooSearchProvider:
    kwargs.setdefault("policy", HttpPolicy(backoff=0.001, retries=retries))
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    _, base = fake.client_config(server.url)
    return KooSearchProvider({"password": password}, {**base, **(options or {})}, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def chats_path(fake: KooSearchFake) -> str:
    return f"/v1/{fake.project_id}/applications/{fake.application_id}/uni-search/chat-history"


def intercept(monkeypatch: pytest.MonkeyPatch, fake: KooSearchFake,
              answer: Callable[[str, str, bytes], FakeResponse | None]) -> None:
    """Let ``answer(method, path, body)`` stand in for the fake when it returns a response."""
    real = fake.route

    def route(method: str, path: str, headers: Mapping[str, str], body: bytes) -> FakeResponse:
        return answer(method, path, body) or real(method, path, headers, body)

    monkeypatch.setattr(fake, "route", route)


def targets_of(fake: KooSearchFake, ids: list[str]) -> list[Target]:
    return [Target("conversation", i, i, fake.chats[i].repo_id) for i in ids]


async def erase(provider: KooSearchProvider, targets: list[Target]) -> list[Outcome]:
    async with provider:
        return await provider.erase(targets)


async def verify(provider: KooSearchProvider, targets: list[Target]) -> list[str]:
    async with provider:
        return [p.state for p in await provider.verify(targets)]


async def check(provider: KooSearchProvider) -> Account:
    async with provider:
        return await provider.check()


async def everything(provider: KooSearchProvider
                     ) -> tuple[list[Conversation], dict[str, list[Message]]]:
    async with provider:
        convs = [c async for c in provider.conversations()]
        return convs, {c.provider_id: [m async for m in provider.messages(c)] for c in convs}


def test_check_names_the_iam_user_and_account_and_logs_in_once(
    server: FakeServer, fake: KooSearchFake
) -> None:
    account = run(check(make(server, fake)))
    assert account == Account(f"{DEMO_DOMAIN}/{DEMO_USER}",
                              f"IAM user {DEMO_USER} in account {DEMO_DOMAIN}")
    assert fake.count("POST", TOKENS) == 1


def test_construction_validates_ids_and_region_and_fills_default_hosts() -> None:
    options = {"region": "ap-southeast-3", "project_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
               "application_id": "9e2d0c1a-0000-4000-8000-000000000001",
               "iam_user": "u", "domain_name": "d"}
    provider = KooSearchProvider({"password": "Pass-Word-42"}, options)
    assert provider.options["base_url"] == "https://css.ap-southeast-3.myhuaweicloud.com"
    assert provider.options["iam_url"] == "https://iam.ap-southeast-3.myhuaweicloud.com"
    assert "Pass-Word-42" not in repr(provider.login) + repr(provider)
    for key, bad in (("project_id", "has space"), ("application_id", "a" * 65),
                     ("project_id", "x/../y")):
        with pytest.raises(PermanentError, match="1 to 64 letters"):
            KooSearchProvider({"password": "p"}, {**options, key: bad})
    with pytest.raises(PermanentError, match="region"):
        KooSearchProvider({"password": "p"}, {**options, "region": "evil.example.com/"})
    with pytest.raises(PermanentError, match="IAM password"):
        KooSearchProvider({}, options)
    with pytest.raises(PermanentError, match="credentials"):
        KooSearchProvider({"password": "p"}, {**options, "iam_url": "https://u:p@iam.x"})


def test_characters_are_the_knowledge_repositories(server: FakeServer, fake: KooSearchFake
                                                   ) -> None:
    async def go() -> list[Character]:
        async with make(server, fake) as provider:
            return [c async for c in provider.characters()]

    found = run(go())
    assert sorted(c.provider_id for c in found) == sorted(fake.repo_ids())
    assert all(c.name == f"Knowledge repository {c.provider_id[:8]}" for c in found)


def test_conversations_carry_title_time_repo_and_soft_deleted_state(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.chats[fake.chat_ids()[0]].is_del = 1
    repo = fake.repo_ids()[1]

    async def go() -> tuple[list[Conversation], list[Conversation]]:
        async with make(server, fake) as provider:
            every = [c async for c in provider.conversations()]
            one = [c async for c in provider.conversations(Character(repo, "r"))]
            return every, one

    every, one = run(go())
    assert [c.provider_id for c in every] == fake.chat_ids()
    assert [c.provider_id for c in one] == fake.chat_ids(repo)
    for conv in every:
        chat = fake.chats[conv.provider_id]
        assert (conv.title, conv.started_at, conv.character_id) == (
            chat.title, chat.created, chat.repo_id)
        assert conv.flags == {"repo_id": chat.repo_id}
    assert [c.state for c in every[:2]] == ["soft_deleted", "active"]


@pytest.mark.parametrize(("chats", "gets"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_listing_reads_every_page_and_stops_at_the_last(chats: int, gets: int) -> None:
    fake = KooSearchFake.sized(conversations=chats, messages=2, seed=chats)
    with fake.serve() as server:
        convs, messages = run(everything(make(server, fake)))
    assert {c.provider_id for c in convs} == fake.conversation_ids()
    assert fake.count("GET", chats_path(fake)) == gets
    assert all([m.provider_id for m in messages[i]] == fake.message_ids(i) for i in messages)


def test_messages_are_questions_and_answers_oldest_first(server: FakeServer,
                                                         fake: KooSearchFake) -> None:
    chat = next(c for c in fake.chats.values() if len(c.questions) >= 2)
    chat.questions[-1].answer = None

    async def go() -> list[Message]:
        async with make(server, fake) as provider:
            return [m async for m in provider.messages(Conversation(chat.id, chat.repo_id))]

    found = run(go())
    expected = [(t, who, who == "User") for q in chat.questions
                for t, who in ((q.question, "User"), (q.answer, "KooSearch")) if t is not None]
    assert [(m.text, m.author, m.is_human) for m in found] == expected
    assert len(found) == 2 * len(chat.questions) - 1
    assert [m.provider_id for m in found] == fake.message_ids(chat.id)
    assert found[0].provider_id == f"{chat.questions[0].id}:q"
    assert [m.position for m in found] == list(range(len(found)))
    assert [m.created_at for m in found[:2]] == [chat.questions[0].at] * 2


def test_erase_batches_250_chats_into_three_deletes_and_verify_sees_them_gone(
    server: FakeServer, fake: KooSearchFake
) -> None:
    repo = fake.repo_ids()[0]
    fake.add_chats(repo, 244)
    targets = targets_of(fake, fake.chat_ids(repo))
    assert len(targets) == 250
    outcomes = run(erase(make(server, fake), targets))
    assert [o.status for o in outcomes] == ["erased"] * 250
    assert [o.target for o in outcomes] == targets
    assert outcomes[0].response == {"total_count": 100, "deleted_count": 100}
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 3
    assert set(fake.deletes.values()) == {1} and len(fake.deletes) == 250
    assert run(verify(make(server, fake), targets)) == ["gone"] * 250
    assert len(fake.conversation_ids()) == 6


def test_erasing_again_reports_already_gone_without_sending(
    server: FakeServer, fake: KooSearchFake
) -> None:
    targets = targets_of(fake, fake.chat_ids()[:2])
    run(erase(make(server, fake), targets))
    again = run(erase(make(server, fake), targets))
    assert [o.status for o in again] == ["already_gone", "already_gone"]
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 1


def test_invalid_ids_and_single_messages_are_refused_without_sending(
    server: FakeServer, fake: KooSearchFake
) -> None:
    chat_id = fake.chat_ids()[0]
    targets = [Target("conversation", "bad id; drop", "x"),
               Target("conversation", "x" * 65, "x"),
               Target("message", fake.message_ids(chat_id)[0], chat_id)]
    outcomes = run(erase(make(server, fake), targets))
    assert [(o.status, o.detail) for o in outcomes[:2]] == [("failed", INVALID_ID)] * 2
    assert outcomes[2].status == "failed" and "whole chats" in outcomes[2].detail
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 0
    assert fake.count("GET", chats_path(fake)) == 0
    assert run(verify(make(server, fake), targets[:1])) == ["gone"]


def test_the_delete_names_the_repositories_the_chats_were_found_in(
    server: FakeServer, fake: KooSearchFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [fake.chat_ids(r)[0] for r in fake.repo_ids()]
    bodies: list[Any] = []
    intercept(monkeypatch, fake, lambda method, path, body: None if method != "DELETE"
              else bodies.append(json.loads(body)))
    # A target without its repository still goes out with the right one.
    outcomes = run(erase(make(server, fake), [Target("conversation", i, i) for i in ids]))
    assert [o.status for o in outcomes] == ["erased", "erased"]
    assert bodies == [{"chat_ids": ids, "repo_ids": fake.repo_ids()}]


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

    async def acquire(self) -> None:
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


def test_unknown_chat_is_not_found_with_the_kos_code(server: FakeServer, fake: KooSearchFake
                                                     ) -> None:
    async def go() -> None:
        async with make(server, fake) as provider:
            async for _ in provider.messages(Conversation("no-such-chat", "")):
                pass

    with pytest.raises(NotFound, match="KOS.00010005"):
        run(go())


@pytest.mark.parametrize("as_array", [False, True])
def test_a_400_is_a_permanent_error_with_code_and_message(
    server: FakeServer, fake: KooSearchFake, as_array: bool
) -> None:
    fake.error_array = as_array
    fake.fail_next(1, 400, path=chats_path(fake))
    with pytest.raises(PermanentError, match="answered 400: KOS.00010002: Injected failure"):
        run(check(make(server, fake)))


def test_gateway_codes_say_they_come_from_api_gateway(server: FakeServer, fake: KooSearchFake
                                                      ) -> None:
    provider = make(server, fake, options={"base_url": server.url + "/not-published"})
    with pytest.raises(NotFound, match="APIGW.0101 from Huawei API Gateway: The API does not"):
        run(check(provider))


def test_a_long_retry_after_raises_rate_limited(server: FakeServer, fake: KooSearchFake) -> None:
    fake.retry_after = 30
    fake.fail_next(1, 429, path=chats_path(fake))
    with pytest.raises(RateLimited) as caught:
        run(check(make(server, fake)))
    assert caught.value.retry_after == 30
    assert "APIGW.0308" in str(caught.value)


def test_a_5xx_burst_on_reads_is_retried_then_succeeds(server: FakeServer, fake: KooSearchFake
                                                       ) -> None:
    fake.fail_next(2, 503, path=chats_path(fake))
    run(check(make(server, fake, retries=2)))
    assert fake.count("GET", chats_path(fake)) == 3


def test_5xx_beyond_the_retries_raises_temporary_error(server: FakeServer, fake: KooSearchFake
                                                       ) -> None:
    fake.fail_next(3, 502)
    with pytest.raises(TemporaryError) as caught:
        run(check(make(server, fake, retries=2)))
    assert caught.value.status == 502


def test_malformed_json_raises_protocol_error(server: FakeServer, fake: KooSearchFake) -> None:
    run(check(make(server, fake, token_cache=(cache := MemoryTokenCache()), cache_key="c")))
    fake.malformed_next(1)
    with pytest.raises(ProtocolError):
        run(check(make(server, fake, token_cache=cache, cache_key="c")))


def test_reset_after_delete_gives_unknown_and_exactly_one_delete(
    server: FakeServer, fake: KooSearchFake
) -> None:
    targets = targets_of(fake, fake.chat_ids()[:2])
    fake.reset_after_delete_next(1)
    outcomes = run(erase(make(server, fake, retries=3), targets))
    assert [o.status for o in outcomes] == ["unknown", "unknown"]
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 1
    assert run(verify(make(server, fake), targets)) == ["gone", "gone"]
    assert [o.status for o in run(erase(make(server, fake), targets))] == ["already_gone"] * 2
    assert [fake.deletes[t.provider_id] for t in targets] == [1, 1]


def test_a_5xx_on_delete_is_not_resent(server: FakeServer, fake: KooSearchFake) -> None:
    targets = targets_of(fake, fake.chat_ids()[:1])
    fake.fail_next(1, 503, path=chats_path(fake) + "/batch")
    outcomes = run(erase(make(server, fake, retries=3), targets))
    assert outcomes[0].status == "unknown"
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 1
    assert run(verify(make(server, fake), targets)) == ["present"]


def test_a_partial_batch_is_read_back_to_tell_which_were_deleted(
    server: FakeServer, fake: KooSearchFake
) -> None:
    targets = targets_of(fake, fake.chat_ids()[:6])
    fake.partial_next(1)
    outcomes = run(erase(make(server, fake), targets))
    assert [o.status for o in outcomes] == ["erased"] * 3 + ["unknown"] * 3
    assert {o.detail for o in outcomes[3:]} == {NOT_DELETED}
    assert outcomes[0].response == {"total_count": 6, "deleted_count": 3}
    assert run(verify(make(server, fake), targets)) == ["gone"] * 3 + ["present"] * 3
    assert len(fake.deletes) == 3


def test_a_soft_delete_is_never_reported_erased(server: FakeServer, fake: KooSearchFake) -> None:
    fake.soft_delete = True
    targets = targets_of(fake, fake.chat_ids()[:3])
    outcomes = run(erase(make(server, fake), targets))
    assert [(o.status, o.detail) for o in outcomes] == [("unknown", SOFT_DELETED)] * 3
    assert run(verify(make(server, fake), targets)) == ["soft_deleted"] * 3
    again = run(erase(make(server, fake), targets))
    assert [(o.status, o.detail) for o in again] == [("unknown", SOFT_DELETED)] * 3
    assert fake.count("DELETE", chats_path(fake) + "/batch") == 1


def test_a_partial_soft_delete_tells_soft_from_untouched(server: FakeServer,
                                                         fake: KooSearchFake) -> None:
    fake.soft_delete = True
    fake.partial_next(1)
    outcomes = run(erase(make(server, fake), targets_of(fake, fake.chat_ids()[:2])))
    assert [(o.status, o.detail) for o in outcomes] == [("unknown", SOFT_DELETED),
                                                        ("unknown", NOT_DELETED)]


@pytest.mark.parametrize("spelling", ["snake", "camel"])
def test_both_count_spellings_are_read(server: FakeServer, fake: KooSearchFake,
                                       spelling: str) -> None:
    fake.count_spelling = spelling  # type: ignore[assignment]
    outcomes = run(erase(make(server, fake), targets_of(fake, fake.chat_ids()[:2])))
    assert [o.status for o in outcomes] == ["erased", "erased"]
    assert outcomes[0].response == {"total_count": 2, "deleted_count": 2}


def test_few_ids_in_a_large_app_are_looked_up_one_by_one(fake: KooSearchFake) -> None:
    big = KooSearchFake(seed=8, repos=1, chats=350)
    ids = big.chat_ids()[:2]
    with big.serve() as server:
        outcomes = run(erase(make(server, big), targets_of(big, ids)))
    assert [o.status for o in outcomes] == ["erased", "erased"]
    # One page to size the list, one lookup per id, before and after the delete.
    assert big.count("GET", chats_path(big)) == 2 * (1 + 2)


def test_a_list_that_ignores_the_chat_filter_is_read_whole(
    fake: KooSearchFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = KooSearchFake(seed=8, repos=1, chats=250)
    real = big._param
    monkeypatch.setattr(big, "_param", lambda key: None if key == "chat_id" else real(key))
    present, gone = big.chat_ids()[-1], "never-existed"
    with big.serve() as server:
        states = run(verify(make(server, big), targets_of(big, [present]) +
                            [Target("conversation", gone, gone)]))
    assert states == ["present", "gone"]


def test_auth_error_during_erase_keeps_settled_outcomes(
    server: FakeServer, fake: KooSearchFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = fake.repo_ids()[0]
    fake.add_chats(repo, 144)
    targets = targets_of(fake, fake.chat_ids(repo))
    deletes: list[str] = []

    def forbidden_after_the_first_delete(method: str, path: str, body: bytes
                                         ) -> FakeResponse | None:
        if method == "DELETE":
            deletes.append(path)
            if len(deletes) > 1:
                return fake.error(403, "The IAM user is not authorized to access the API.")
        return None

    intercept(monkeypatch, fake, forbidden_after_the_first_delete)
    with pytest.raises(AuthError) as caught:
        run(erase(make(server, fake), targets))
    assert [o.status for o in caught.value.partial] == ["erased"] * 100
    assert [o.target for o in caught.value.partial] == targets[:100]
    assert len(deletes) == 3 and len(fake.deletes) == 100


def test_unreachable_iam_raises_temporary_error(fake: KooSearchFake) -> None:
    with fake.serve() as gone:
        url = gone.url
    with pytest.raises(TemporaryError, match="Huawei IAM"):
        run(check(make(gone, fake, retries=1, options={"iam_url": url, "base_url": url})))


def test_in_process_transport_works_like_the_server(fake: KooSearchFake) -> None:
    targets = targets_of(fake, fake.chat_ids()[:3])
    secrets, options = fake.client_config("http://fake")
    provider = KooSearchProvider(secrets, options, transport=fake.transport(),
                                 budget=RateBudget(1000, 1000))
    assert [o.status for o in run(erase(provider, targets))] == ["erased"] * 3


def test_secrets_tokens_and_chat_text_never_reach_the_logs(
    server: FakeServer, fake: KooSearchFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = fake.chats[fake.chat_ids()[0]]
    texts = [q.question for q in chat.questions] + [q.answer or "" for q in chat.questions]
    fake.fail_next(1, 503, path=chats_path(fake))

    async def go() -> None:
        async with make(server, fake) as provider:
            await provider.check()
            [m async for m in provider.messages(Conversation(chat.id, chat.repo_id))]
            fake.expire_tokens()
            await provider.erase(targets_of(fake, [chat.id]))
        async with make(server, fake, password="Wrong-Secret-456") as bad:
            with pytest.raises(AuthError):
                await bad.check()

    issued = list(fake.tokens)
    run(go())
    issued += list(fake.tokens)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert f"GET {chats_path(fake)} -> 503" in caplog.text
    assert f"POST {TOKENS} -> 201" in caplog.text
    assert issued and not any(token in logged for token in issued)
    assert DEMO_PASSWORD not in logged and "Wrong-Secret-456" not in logged
    assert not any(t in logged for t in texts if t)
    assert server.url not in logged
