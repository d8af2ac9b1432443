"""ConvaiProvider against the Convai fake over a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

import providers
from providers import (
    AuthError,
    Character,
    ConvaiProvider,
    HttpPolicy,
    NotFound,
    PermanentError,
    ProtocolError,
    RateBudget,
    RateLimited,
    Target,
    TemporaryError,
)
from providers.fakes import ConvaiFake, FakeResponse, FakeServer
from providers.fakes.convai import DEMO_KEY
from providers.http import parse_retry_after

T = TypeVar("T")
DELETE = "/character/chatHistory/delete"
SESSIONS = "/character/chatHistory/list"


def make_fake() -> ConvaiFake:
    return ConvaiFake(seed=5, characters=2, sessions=5, latency=0.001)


def make(server: FakeServer, key: str = DEMO_KEY, *, retries: int = 2, **kwargs: Any
         ) -> ConvaiProvider:
    kwargs.setdefault("policy", HttpPolicy(backoff=0.001, retries=retries))
    kwargs.setdefault("budget", RateBudget(1000, 1000))
    return ConvaiProvider({"api_key": key}, {"base_url": server.url}, **kwargs)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def session_targets(fake: ConvaiFake, char_id: str, count: int | None = None) -> list[Target]:
    ids = fake.session_ids(char_id)[:count]
    return [Target("conversation", sid, sid, char_id) for sid in ids]


async def erase(provider: ConvaiProvider, targets: list[Target]) -> list[Any]:
    async with provider:
        return await provider.erase(targets)


async def verify(provider: ConvaiProvider, targets: list[Target]) -> list[str]:
    async with provider:
        return [p.state for p in await provider.verify(targets)]


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


def test_erase_batches_250_sessions_into_three_deletes_and_verify_sees_them_gone(
    server: FakeServer, fake: ConvaiFake
) -> None:
    char_id, other = fake.character_ids()
    fake.add_sessions(char_id, 245)
    targets = session_targets(fake, char_id)
    assert len(targets) == 250

    outcomes = run(erase(make(server), targets))
    assert [o.status for o in outcomes] == ["erased"] * 250
    assert [o.target for o in outcomes] == targets
    assert outcomes[0].response == {"status": "SUCCESSFULLY DELETED"}
    assert fake.count("POST", DELETE) == 3
    assert set(fake.deletes.values()) == {1} and len(fake.deletes) == 250
    assert run(verify(make(server), targets)) == ["gone"] * 250
    assert len(fake.session_ids(other)) == 5


def test_erasing_again_reports_already_gone_without_sending_a_delete(
    server: FakeServer, fake: ConvaiFake
) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 2)
    run(erase(make(server), targets))
    again = run(erase(make(server), targets))
    assert [o.status for o in again] == ["already_gone", "already_gone"]
    assert fake.count("POST", DELETE) == 1


async def erase_in_one_session(provider: ConvaiProvider, batches: list[list[Target]]
                               ) -> list[str]:
    """Each batch through erase(), as a worker sends its claims through one provider."""
    async with provider:
        statuses: list[str] = []
        for batch in batches:
            statuses += [o.status for o in await provider.erase(batch)]
        return statuses


def test_one_listing_serves_the_deletes_of_a_long_job_in_one_session(
    server: FakeServer, fake: ConvaiFake
) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 4)
    batches = [[t] for t in targets + targets[:1]]  # the last one again: already gone
    statuses = run(erase_in_one_session(make(server), batches))
    assert statuses == ["erased"] * 4 + ["already_gone"]
    assert fake.count("POST", SESSIONS) == 1
    assert fake.count("POST", DELETE) == 4


def test_the_listing_is_read_again_once_it_is_older_than_its_ttl(
    server: FakeServer, fake: ConvaiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import providers.convai

    monkeypatch.setattr(providers.convai, "LISTING_TTL", 0.0)
    targets = session_targets(fake, fake.character_ids()[0], 2)
    run(erase_in_one_session(make(server), [targets[:1], targets[1:]]))
    assert fake.count("POST", SESSIONS) == 2


def test_an_uncertain_delete_makes_the_next_batch_read_the_listing_again(
    server: FakeServer, fake: ConvaiFake
) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 2)
    fake.fail_next(1, 500, DELETE)  # the first delete's answer is lost
    statuses = run(erase_in_one_session(make(server, retries=0), [targets[:1], targets[1:]]))
    assert statuses == ["unknown", "erased"]
    assert fake.count("POST", SESSIONS) == 2


def test_single_messages_are_refused_and_nothing_is_sent(
    server: FakeServer, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[0]
    sid = fake.session_ids(char_id)[0]
    outcomes = run(erase(make(server), [Target("message", f"{sid}:0", sid, char_id)]))
    assert outcomes[0].status == "failed"
    assert "whole sessions" in outcomes[0].detail
    assert fake.count("POST", DELETE) == 0
    assert sid in fake.session_ids(char_id)


def test_targets_without_character_are_located_by_listing(
    server: FakeServer, fake: ConvaiFake
) -> None:
    sid = fake.session_ids(fake.character_ids()[1])[2]
    outcomes = run(erase(make(server), [Target("conversation", sid, sid)]))
    assert outcomes[0].status == "erased"
    assert fake.deletes[sid] == 1


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


def test_reset_after_delete_gives_unknown_and_exactly_one_delete(
    server: FakeServer, fake: ConvaiFake
) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 2)
    fake.reset_after_delete_next(1)
    outcomes = run(erase(make(server, retries=3), targets))
    assert [o.status for o in outcomes] == ["unknown", "unknown"]
    assert fake.count("POST", DELETE) == 1
    assert run(verify(make(server), targets)) == ["gone", "gone"]
    assert [o.status for o in run(erase(make(server), targets))] == ["already_gone"] * 2
    assert [fake.deletes[t.provider_id] for t in targets] == [1, 1]


def test_a_5xx_on_delete_is_not_resent(server: FakeServer, fake: ConvaiFake) -> None:
    targets = session_targets(fake, fake.character_ids()[0], 1)
    fake.fail_next(1, 503, path=DELETE)
    outcomes = run(erase(make(server, retries=3), targets))
    assert outcomes[0].status == "unknown"
    assert fake.count("POST", DELETE) == 1
    assert run(verify(make(server), targets)) == ["present"]


def test_unknown_character_raises_not_found_and_verifies_as_gone(
    server: FakeServer, fake: ConvaiFake
) -> None:
    async def go() -> None:
        async with make(server) as provider:
            async for _ in provider.conversations(Character("no-such-character", "Ghost")):
                pass

    with pytest.raises(NotFound, match="no-such-character"):
        run(go())
    ghost = [Target("conversation", "s1", "s1", "no-such-character")]
    assert run(verify(make(server), ghost)) == ["gone"]
    assert [o.status for o in run(erase(make(server), ghost))] == ["already_gone"]


def test_plan_gated_delete_reports_failed_and_stops_asking(
    server: FakeServer, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[0]
    fake.add_sessions(char_id, 145)
    targets = session_targets(fake, char_id)
    fake.plan_gated_delete = True
    outcomes = run(erase(make(server), targets))
    assert {o.status for o in outcomes} == {"failed"}
    assert "select customers" in outcomes[0].detail
    assert fake.count("POST", DELETE) == 1
    assert set(run(verify(make(server), targets))) == {"present"}


def test_auth_error_during_erase_keeps_settled_outcomes(
    server: FakeServer, fake: ConvaiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = fake.character_ids()
    targets = session_targets(fake, first, 1) + session_targets(fake, second, 1)
    real_route = fake.route
    deletes = {"n": 0}

    def second_delete_refused(method: str, path: str, headers: Mapping[str, str],
                              body: bytes) -> FakeResponse:
        if path == DELETE:
            deletes["n"] += 1
            if deletes["n"] == 2:
                return fake.error(401, "Invalid API key provided.")
        return real_route(method, path, headers, body)

    monkeypatch.setattr(fake, "route", second_delete_refused)
    with pytest.raises(AuthError) as caught:
        run(erase(make(server), targets))
    assert [o.status for o in caught.value.partial] == ["erased"]
    assert caught.value.partial[0].target == targets[0]
    assert fake.deletes[targets[0].provider_id] == 1


def test_unreachable_provider_raises_temporary_error_not_sent(fake: ConvaiFake) -> None:
    with fake.serve() as gone:
        url = gone.url

    async def go() -> None:
        async with ConvaiProvider({"api_key": DEMO_KEY}, {"base_url": url},
                                  policy=HttpPolicy(backoff=0.001, retries=1)) as provider:
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
