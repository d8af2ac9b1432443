"""One contract, every provider: each client against its fake over a real loopback server.

A provider that passes this suite works in the dashboard without further code: it lists
and reads everything whatever the paging, erases and verifies, reports every error class,
and never sends a second successful delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import providers
import providers.tokens
from providers.fakes import FAKES
from providers.fakes.base import FakeProvider, FakeServer
from providers.records import Conversation, Target
from tests.providers.loopback import policy

NAMES = sorted(FAKES)
# Providers that page a conversation newest first, so an incremental sync can stop early.
PAGES_NEWEST_FIRST = {"characterai"}


def client(fake: FakeProvider, server: FakeServer, **kwargs: Any) -> providers.Provider:
    secrets, options = fake.client_config(server.url)
    kwargs.setdefault("policy", policy(backoff=0.01, max_retry_wait=0.2))
    kwargs.setdefault("budget", providers.RateBudget(1000, 1000))
    return providers.get(fake.name)(secrets, options, **kwargs)


async def read_all(provider: providers.Provider) -> dict[str, list[str]]:
    """Every conversation id with its message ids, oldest first."""
    out: dict[str, list[str]] = {}
    async with provider:
        async for conv in provider.conversations():
            assert conv.provider_id not in out, "a conversation was listed twice"
            out[conv.provider_id] = [m.provider_id async for m in provider.messages(conv)]
    return out


async def conversations(provider: providers.Provider) -> list[Conversation]:
    async with provider:
        return [c async for c in provider.conversations()]


def call(provider: providers.Provider, method: str, *args: Any) -> Any:
    async def go() -> Any:
        async with provider:
            return await getattr(provider, method)(*args)
    return asyncio.run(go())


@pytest.fixture(params=NAMES)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[FakeProvider, FakeServer]]:
    fake = FAKES[request.param].sized(conversations=4, messages=6, seed=3)
    with fake.serve() as server:
        yield fake, server


@pytest.mark.parametrize("name", NAMES)
def test_newest_messages_read_back_to_the_known_one_or_leave_it_to_a_whole_read(
        name: str) -> None:
    fake = FAKES[name].sized(conversations=1, messages=120, seed=5)

    async def go() -> tuple[list[Any], list[Any] | None, list[Any] | None]:
        async with client(fake, server) as provider:
            [conv] = [c async for c in provider.conversations()]
            whole = [m async for m in provider.messages(conv)]
            newest = await provider.newest_messages(conv, whole[-3].provider_id)
            return whole, newest, await provider.newest_messages(conv, "not-a-message-id")

    with fake.serve() as server:
        whole, newest, unknown = asyncio.run(go())
    assert unknown is None
    if name in PAGES_NEWEST_FIRST:
        assert newest is not None
        assert [(m.provider_id, m.text) for m in newest] == [(m.provider_id, m.text)
                                                            for m in whole[-3:]]
        assert [m.position for m in newest] == [0, 1, 2]
    else:  # reads conversations whole anyway: the sync reads it whole and sees deletions
        assert newest is None


def conversation_targets(provider: providers.Provider, convs: list[Conversation]) -> list[Target]:
    return [Target("conversation", c.provider_id, c.provider_id, c.character_id) for c in convs]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(0, 0), (1, 0), (1, 1), (2, 20), (1, 21), (1, 50), (1, 51),
                                   (1, 101), (23, 2)])
def test_lists_and_reads_everything_whatever_the_paging(name: str, shape: tuple[int, int]) -> None:
    n_conv, n_msg = shape
    fake = FAKES[name].sized(conversations=n_conv, messages=n_msg, seed=5)
    with fake.serve() as server:
        mirrored = asyncio.run(read_all(client(fake, server)))
    assert set(mirrored) == fake.conversation_ids()
    assert len(mirrored) == n_conv
    for conv_id, message_ids in mirrored.items():
        assert message_ids == fake.message_ids(conv_id)
        assert len(message_ids) >= n_msg


def test_messages_come_oldest_first_with_positions_and_aware_times(served) -> None:
    fake, server = served
    provider = client(fake, server)

    async def go() -> None:
        async with provider:
            async for conv in provider.conversations():
                msgs = [m async for m in provider.messages(conv)]
                assert [m.position for m in msgs] == list(range(len(msgs)))
                times = [m.created_at for m in msgs if m.created_at]
                assert all(t.tzinfo is not None for t in times)
                assert times == sorted(times)
    asyncio.run(go())


def test_erases_a_batch_of_conversations_and_verifies_them_gone(served) -> None:
    fake, server = served
    convs = asyncio.run(conversations(client(fake, server)))[:2]
    targets = conversation_targets(client(fake, server), convs)
    outcomes = call(client(fake, server), "erase", targets)
    assert [o.target for o in outcomes] == targets
    assert [o.status for o in outcomes] == ["erased", "erased"], [o.detail for o in outcomes]
    presence = call(client(fake, server), "verify", targets)
    assert [p.state for p in presence] == ["gone", "gone"]
    for conv in convs:
        assert fake.message_ids(conv.provider_id) == []
    assert all(n == 1 for n in fake.deletes.values())


def test_erasing_again_reports_already_gone_and_sends_nothing(served) -> None:
    fake, server = served
    convs = asyncio.run(conversations(client(fake, server)))[:1]
    targets = conversation_targets(client(fake, server), convs)
    call(client(fake, server), "erase", targets)
    deletes = dict(fake.deletes)
    again = call(client(fake, server), "erase", targets)
    assert [o.status for o in again] == ["already_gone"]
    assert dict(fake.deletes) == deletes


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if "message" in providers.get(n).capabilities.erase_kinds])
def test_erases_single_messages_where_the_provider_can(name: str) -> None:
    fake = FAKES[name].sized(conversations=2, messages=6, seed=9)
    with fake.serve() as server:
        conv = asyncio.run(conversations(client(fake, server)))[0]
        before = fake.message_ids(conv.provider_id)
        chosen = before[1:3]
        targets = [Target("message", m, conv.provider_id, conv.character_id) for m in chosen]
        outcomes = call(client(fake, server), "erase", targets)
        assert [o.status for o in outcomes] == ["erased", "erased"]
        assert [p.state for p in call(client(fake, server), "verify", targets)] == ["gone"] * 2
        assert fake.message_ids(conv.provider_id) == [m for m in before if m not in chosen]


def test_a_revoked_key_is_an_auth_error_everywhere(served) -> None:
    fake, server = served
    fake.revoke_credentials()
    with pytest.raises(providers.AuthError) as info:
        call(client(fake, server), "check")
    assert str(info.value)
    with pytest.raises(providers.AuthError):
        asyncio.run(read_all(client(fake, server)))


def test_rate_limits_surface_with_retry_after(served) -> None:
    fake, server = served
    fake.fail_next(20, status=429)
    with pytest.raises(providers.RateLimited) as info:
        asyncio.run(read_all(client(fake, server)))
    assert info.value.retry_after and info.value.retry_after > 0


def test_a_short_5xx_burst_on_reads_is_retried(served) -> None:
    fake, server = served
    expected = {c: fake.message_ids(c) for c in fake.conversation_ids()}
    fake.fail_next(1, status=503)
    assert asyncio.run(read_all(client(fake, server))) == expected


def test_a_long_outage_is_a_temporary_error(served) -> None:
    fake, server = served
    fake.fail_next(50, status=502)
    with pytest.raises(providers.TemporaryError):
        asyncio.run(read_all(client(fake, server)))


def test_a_malformed_answer_is_a_protocol_error(served) -> None:
    fake, server = served
    fake.malformed_next(50)
    with pytest.raises(providers.ProtocolError):
        asyncio.run(read_all(client(fake, server)))


def test_an_unknown_conversation_is_never_reported_erased(served) -> None:
    fake, server = served
    conv = asyncio.run(conversations(client(fake, server)))[0]
    ghost_id = "unknown0000000000000000000000000"
    ghost = Target("conversation", ghost_id, ghost_id, conv.character_id)
    [outcome] = call(client(fake, server), "erase", [ghost])
    assert outcome.status in {"already_gone", "failed"}
    assert not fake.deletes


def test_a_reset_after_the_delete_is_unknown_and_lands_exactly_once(served) -> None:
    fake, server = served
    convs = asyncio.run(conversations(client(fake, server)))[:1]
    targets = conversation_targets(client(fake, server), convs)
    fake.reset_after_delete_next(1)
    [outcome] = call(client(fake, server), "erase", targets)
    assert outcome.status == "unknown"
    assert fake.deletes and all(n == 1 for n in fake.deletes.values())


@pytest.mark.parametrize("name", [n for n in NAMES if hasattr(FAKES[n], "expire_tokens")])
def test_an_expired_token_is_refreshed_once_and_the_call_succeeds(name: str) -> None:
    fake = FAKES[name].sized(conversations=2, messages=2, seed=1)
    with fake.serve() as server:
        cache = providers.tokens.MemoryTokenCache()
        first = asyncio.run(read_all(client(fake, server, token_cache=cache, cache_key="c1")))
        fake.expire_tokens()  # type: ignore[attr-defined]
        again = asyncio.run(read_all(client(fake, server, token_cache=cache, cache_key="c1")))
    assert first == again and len(first) == 2
