"""ConvaiProvider checking, listing, reading and failing against its fake; HTTP pacing helpers."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

import providers
from providers import (
    AuthError,
    Character,
    ConvaiProvider,
    PermanentError,
    ProtocolError,
    RateBudget,
    RateLimited,
    TemporaryError,
)
from providers.fakes import ConvaiFake, FakeServer
from providers.fakes.convai import DEMO_KEY
from providers.http import MAX_RETRY_AFTER, parse_retry_after
from tests.providers.convai_helpers import (
    DELETE,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    run,
    session_targets,
)
from tests.providers.loopback import policy


def test_check_names_the_account_without_revealing_the_key(
    server: FakeServer, fake: ConvaiFake
) -> None:
    async def go() -> providers.Account:
        async with make(server) as provider:
            return await provider.check()

    account = run(go())
    assert account.id == fake.owner
    assert account.name == "Convai key …0000"
    assert DEMO_KEY not in account.name


def test_characters_carry_names_and_utc_last_interaction(
    server: FakeServer, fake: ConvaiFake
) -> None:
    async def go() -> list[Character]:
        async with make(server) as provider:
            return [c async for c in provider.characters()]

    found = run(go())
    assert [c.provider_id for c in found] == fake.character_ids()
    assert [c.name for c in found] == [fake.characters[i].name for i in fake.character_ids()]
    assert all(c.description and c.last_interaction for c in found)
    assert all(c.last_interaction and c.last_interaction.tzinfo == UTC for c in found)


def test_conversations_of_every_character_with_start_time_and_memory_flag(
    server: FakeServer, fake: ConvaiFake
) -> None:
    async def go() -> list[providers.Conversation]:
        async with make(server) as provider:
            return [c async for c in provider.conversations()]

    found = run(go())
    assert len(found) == 10
    for conv in found:
        session = fake.characters[conv.character_id].sessions[conv.provider_id]
        assert conv.started_at == session.started.replace(microsecond=0)
        assert conv.flags == {"in_memory": session.in_memory}


def test_messages_come_oldest_first_with_synthetic_ids(
    server: FakeServer, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[1]
    session = fake.characters[char_id].newest_first()[0]
    conv = providers.Conversation(session.id, char_id)

    async def go() -> list[providers.Message]:
        async with make(server) as provider:
            return [m async for m in provider.messages(conv)]

    found = run(go())
    expected = [(s, m) for i in session.interactions for s, m in i.lines]
    assert [(m.author, m.text) for m in found] == expected
    assert [m.position for m in found] == list(range(len(expected)))
    assert [m.provider_id for m in found] == [f"{session.id}:{n}" for n in range(len(found))]
    assert [m.is_human for m in found[:2]] == [True, False]
    times = [m.created_at for m in found]
    assert all(t is not None for t in times) and times == sorted(times)  # type: ignore[type-var]


def test_wrong_key_raises_auth_error_with_convais_message(server: FakeServer) -> None:
    async def go() -> None:
        async with make(server, key="wrong-key-123456") as provider:
            await provider.check()

    with pytest.raises(AuthError, match="Invalid API key provided."):
        run(go())


def test_missing_key_is_refused_at_construction(server: FakeServer) -> None:
    with pytest.raises(PermanentError, match="API key"):
        ConvaiProvider({}, {"base_url": server.url})
    with pytest.raises(PermanentError, match="unknown provider"):
        providers.get("nope")
    assert providers.get("convai") is ConvaiProvider


def test_a_5xx_burst_on_reads_is_retried_then_succeeds(
    server: FakeServer, fake: ConvaiFake
) -> None:
    fake.fail_next(2, 503)

    async def go() -> list[Character]:
        async with make(server, retries=2) as provider:
            return [c async for c in provider.characters()]

    assert len(run(go())) == 2
    assert fake.count("POST", "/character/list") == 3


def test_5xx_beyond_the_retries_raises_temporary_error(
    server: FakeServer, fake: ConvaiFake
) -> None:
    fake.fail_next(3, 502)

    async def go() -> None:
        async with make(server, retries=2) as provider:
            await provider.check()

    with pytest.raises(TemporaryError) as caught:
        run(go())
    assert caught.value.status == 502


def test_a_long_retry_after_raises_rate_limited_at_once(
    server: FakeServer, fake: ConvaiFake
) -> None:
    fake.retry_after = 30
    fake.fail_next(1, 429)

    async def go() -> None:
        async with make(server) as provider:
            await provider.check()

    with pytest.raises(RateLimited) as caught:
        run(go())
    assert caught.value.retry_after == 30
    assert fake.count("POST", "/character/list") == 1


def test_a_short_retry_after_is_waited_out(server: FakeServer, fake: ConvaiFake) -> None:
    fake.retry_after = 0.05
    fake.fail_next(1, 429)

    async def go() -> providers.Account:
        async with make(server) as provider:
            return await provider.check()

    assert run(go()).id == fake.owner
    assert fake.count("POST", "/character/list") == 2


def test_malformed_json_raises_protocol_error(server: FakeServer, fake: ConvaiFake) -> None:
    fake.malformed_next(1)

    async def go() -> None:
        async with make(server) as provider:
            await provider.check()

    with pytest.raises(ProtocolError):
        run(go())


def test_unreachable_provider_raises_temporary_error_not_sent(fake: ConvaiFake) -> None:
    with fake.serve() as gone:
        url = gone.url

    async def go() -> None:
        async with ConvaiProvider({"api_key": DEMO_KEY}, {"base_url": url},
                                  policy=policy(backoff=0.001, retries=1)) as provider:
            await provider.check()

    with pytest.raises(TemporaryError) as caught:
        run(go())
    assert caught.value.sent is False


def test_in_process_transport_works_like_the_server(fake: ConvaiFake) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 3)

    async def go() -> list[str]:
        async with ConvaiProvider({"api_key": DEMO_KEY}, {}, transport=fake.transport(),
                                  budget=RateBudget(1000, 1000)) as provider:
            return [o.status for o in await provider.erase(targets)]

    assert run(go()) == ["erased"] * 3
    assert fake.count("POST", DELETE) == 1


def test_secrets_and_message_text_never_reach_the_logs(
    server: FakeServer, fake: ConvaiFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    char_id = fake.character_ids()[0]
    session = fake.characters[char_id].newest_first()[0]
    texts = [m for i in session.interactions for _, m in i.lines]
    fake.fail_next(1, 503)

    async def go() -> None:
        async with make(server) as provider:
            await provider.check()
            conv = providers.Conversation(session.id, char_id)
            [m async for m in provider.messages(conv)]
            await provider.erase(session_targets(fake, char_id, 1))
        async with make(server, key="wrong-key-abcdef") as bad:
            with pytest.raises(AuthError):
                await bad.check()

    run(go())
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "POST /character/list -> 503" in caplog.text
    assert DEMO_KEY not in logged and "wrong-key-abcdef" not in logged
    assert not any(t in logged for t in texts)
    assert server.url not in logged


def test_rate_budget_paces_requests_beyond_the_burst() -> None:
    budget = RateBudget(rate=50, burst=2)

    async def go() -> float:
        started = time.monotonic()
        for _ in range(7):
            await budget.acquire()
        return time.monotonic() - started

    assert run(go()) >= 0.09  # 5 tokens beyond the burst at 50/s


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("12", now=now) == 12
    assert parse_retry_after(later, now=now) == 90
    assert parse_retry_after("soon", now=now) is None


def test_retry_after_is_taken_at_its_word_up_to_a_day() -> None:
    """Longer (or forever) is asked again after a day; a job says until when it waits."""
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    for endless in ("inf", "1e400", "1e12", "Fri, 01 Jan 2099 00:00:00 GMT"):
        assert parse_retry_after(endless, now=now) == MAX_RETRY_AFTER
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("-5", now=now) == 0
