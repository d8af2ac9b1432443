"""KooSearchProvider checking, listing, reading and failing, against its loopback fake."""

from __future__ import annotations

import logging

import pytest

from providers import (
    Account,
    AuthError,
    Character,
    Conversation,
    Message,
    NotFound,
    PermanentError,
    ProtocolError,
    RateBudget,
    RateLimited,
    TemporaryError,
)
from providers.fakes.base import FakeServer
from providers.fakes.koosearch import DEMO_DOMAIN, DEMO_PASSWORD, DEMO_USER, KooSearchFake
from providers.koosearch.client import KooSearchProvider
from providers.tokens import MemoryTokenCache
from tests.providers.koosearch_helpers import (
    TOKENS,
    chats_path,
    check,
    erase,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    run,
    targets_of,
)
from tests.providers.loopback import policy


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


def test_unreachable_iam_raises_temporary_error(fake: KooSearchFake) -> None:
    with fake.serve() as gone:
        url = gone.url
    with pytest.raises(TemporaryError, match="Huawei IAM"):
        run(check(make(gone, fake, retries=1, options={"iam_url": url, "base_url": url})))


def test_in_process_transport_works_like_the_server(fake: KooSearchFake) -> None:
    targets = targets_of(fake, fake.chat_ids()[:3])
    secrets, options = fake.client_config("http://fake")
    provider = KooSearchProvider(secrets, options, transport=fake.transport(),
                                 budget=RateBudget(1000, 1000),
                                 policy=policy(allowed_hosts=("fake",)))
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
