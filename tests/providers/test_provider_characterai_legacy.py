"""CharacterAILegacyProvider reading and failing, against its fake over a real loopback server.

Erasing is in test_provider_characterai_legacy_erase.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import pytest

from providers import (
    Account,
    AuthError,
    Character,
    Conversation,
    NotFound,
    PermanentError,
    ProtocolError,
    RateBudget,
    TemporaryError,
)
from providers.characterai.legacy import (
    DELETE,
    HISTORIES,
    MESSAGES,
    RECENT,
    USER,
    CharacterAILegacyProvider,
)
from providers.fakes.base import FakeResponse, FakeServer, json_response
from providers.fakes.characterai_legacy import DEMO_TOKEN, CharacterAILegacyFake
from tests.providers.characterai_legacy_helpers import (
    GONE_NOTE,
    erase,
    history_target,
    listing,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    message_targets,
    new_history,
    read,
    run,
    verify,
)
from tests.providers.loopback import policy

# -- reading -----------------------------------------------------------------------------


def test_check_names_the_account_and_accepts_a_pasted_token_prefix(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    async def go() -> Account:
        async with make(server, token=f"  Token {DEMO_TOKEN} ") as provider:
            return await provider.check()

    assert run(go()) == Account(str(fake.account["id"]), str(fake.account["username"]))


def test_an_anonymous_session_is_an_auth_error(server: FakeServer,
                                               fake: CharacterAILegacyFake) -> None:
    fake.anonymous_tokens = frozenset({"g" * 40})

    async def go() -> None:
        async with make(server, token="g" * 40) as provider:
            await provider.check()

    with pytest.raises(AuthError, match="anonymous"):
        run(go())
    with pytest.raises(AuthError, match="force_login"):
        run(listing(make(server, token="g" * 40)))


def test_a_wrong_token_raises_auth_error_with_the_providers_reason(server: FakeServer) -> None:
    async def go() -> None:
        async with make(server, token="w" * 40) as provider:
            await provider.check()

    with pytest.raises(AuthError, match="Invalid token"):
        run(go())


def test_missing_token_or_bad_url_is_refused_at_construction(server: FakeServer) -> None:
    with pytest.raises(PermanentError, match="Token"):
        CharacterAILegacyProvider({"token": "Token "}, {"plus_url": server.url},
                                  policy=policy())
    with pytest.raises(PermanentError, match="Token"):
        CharacterAILegacyProvider({}, {})
    with pytest.raises(PermanentError, match="credentials"):
        CharacterAILegacyProvider({"token": DEMO_TOKEN}, {"plus_url": "https://u:p@x.test"})
    default = CharacterAILegacyProvider({"token": DEMO_TOKEN}, {})
    assert default.options["plus_url"] == "https://plus.character.ai"
    assert DEMO_TOKEN not in repr(default)


def test_conversations_are_every_history_of_every_recent_character(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    async def go() -> tuple[list[Character], list[Conversation]]:
        async with make(server) as provider:
            return ([c async for c in provider.characters()],
                    [c async for c in provider.conversations()])

    chars, convs = run(go())
    assert {c.provider_id: c.name for c in chars} == {
        i: fake.characters[i].name for i in fake.character_ids()}
    assert all(c.description and c.last_interaction for c in chars)
    assert {c.provider_id for c in convs} == fake.conversation_ids()
    for conv in convs:
        history = fake.history(conv.provider_id)
        owner = fake.owner(conv.provider_id)
        assert history is not None and owner is not None
        assert conv.character_id == owner.id
        assert conv.started_at == history.created
        assert conv.last_message_at == history.last_interaction
    assert fake.count("POST", HISTORIES) == 2


def test_a_character_name_may_come_as_name(server: FakeServer, fake: CharacterAILegacyFake,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = fake.route

    def renamed(method: str, path: str, headers: Mapping[str, str], body: bytes
                ) -> FakeResponse:
        answer = real(method, path, headers, body)
        if path != RECENT:
            return answer
        rows = json.loads(answer.body)["characters"]
        for row in rows:
            row["name"] = row.pop("participant__name")
        return json_response(200, {"characters": rows})

    monkeypatch.setattr(fake, "route", renamed)

    async def go() -> list[str]:
        async with make(server) as provider:
            return [c.name async for c in provider.characters()]

    assert sorted(run(go())) == sorted(c.name for c in fake.characters.values())


@pytest.mark.parametrize("count,pages", [(0, 1), (1, 1), (20, 1), (21, 2), (40, 2), (61, 4)])
def test_every_message_is_read_whatever_the_paging(
    server: FakeServer, fake: CharacterAILegacyFake, count: int, pages: int
) -> None:
    history_id = new_history(fake, count)
    found = run(read(make(server), history_id))
    assert [m.provider_id for m in found] == fake.message_ids(history_id)
    assert [m.position for m in found] == list(range(count))
    assert fake.count("GET", MESSAGES) == pages


def test_the_transcript_leaves_out_alternatives_and_keeps_authors(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 30, alternatives=1.0)
    history = fake.history(history_id)
    owner = fake.owner(history_id)
    assert history is not None and owner is not None
    found = run(read(make(server), history_id))
    kept = [m for m in history.messages if not m.is_alternative]
    assert len(history.messages) > len(kept) == len(found) == 30
    assert [(m.provider_id, m.text, m.is_human) for m in found] == [
        (m.uuid, m.text, m.is_human) for m in kept]
    assert found[0].author == owner.name and not found[0].is_human
    assert found[1].author == fake.account["name"] and found[1].is_human
    assert all(m.created_at is None for m in found)


def test_pages_counted_from_the_oldest_give_the_same_transcript(
    server: FakeServer, fake: CharacterAILegacyFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    history_id = new_history(fake, 45)
    expected = fake.message_ids(history_id)
    real = fake._messages

    def oldest_first(query: dict[str, list[str]]) -> FakeResponse:
        # The other reading of the UNCONFIRMED page order: page 1 = the oldest 20.
        body = json.loads(real({**query, "page_num": ["1"]}).body)
        everything = [m for n in (3, 2, 1) for m in json.loads(
            real({**query, "page_num": [str(n)]}).body)["messages"]]
        number = int((query.get("page_num") or ["1"])[0])
        chunk = everything[(number - 1) * 20:number * 20]
        body.update(messages=chunk, next_page=number + 1, has_more=number * 20 < 45)
        return json_response(200, body)

    monkeypatch.setattr(fake, "_messages", oldest_first)
    assert [m.provider_id for m in run(read(make(server), history_id))] == expected


def test_a_next_page_that_repeats_ends_the_paging(
    server: FakeServer, fake: CharacterAILegacyFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    history_id = new_history(fake, 5)
    real = fake._messages

    def stuck(query: dict[str, list[str]]) -> FakeResponse:
        body = json.loads(real(query).body)
        body.update(next_page=7, has_more=True)
        return json_response(200, body)

    monkeypatch.setattr(fake, "_messages", stuck)
    found = run(read(make(server), history_id))
    assert [m.provider_id for m in found] == fake.message_ids(history_id)
    assert fake.count("GET", MESSAGES) == 2


def test_an_unknown_history_raises_not_found(server: FakeServer) -> None:
    with pytest.raises(NotFound, match="no-such-history"):
        run(read(make(server), "no-such-history"))


def test_exactly_999_histories_leave_a_note(server: FakeServer,
                                            fake: CharacterAILegacyFake) -> None:
    char_id = fake.character_ids()[0]
    for _ in range(999 - len(fake.characters[char_id].histories)):
        fake.add_history(char_id, 0)

    async def go() -> tuple[int, list[str]]:
        async with make(server) as provider:
            char = Character(char_id, fake.characters[char_id].name)
            return len([c async for c in provider.conversations(char)]), provider.notes

    count, notes = run(go())
    assert count == 999
    assert notes == [f"Character.AI returned 999 legacy histories with "
                     f"{fake.characters[char_id].name}; older ones may be missing."]


# -- retired endpoints -------------------------------------------------------------------


def test_a_retired_api_lists_nothing_and_says_so_once(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.gone = True

    async def go() -> tuple[Account, list[Conversation], list[Conversation], list[str]]:
        async with make(server) as provider:
            account = await provider.check()
            every = [c async for c in provider.conversations()]
            char = Character(fake.character_ids()[0], "")
            one = [c async for c in provider.conversations(char)]
            return account, every, one, provider.notes

    account, every, one, notes = run(go())
    assert account.name == fake.account["username"]
    assert every == one == []
    assert notes == [GONE_NOTE]
    assert fake.count("GET", RECENT) == 1 and fake.count("POST", HISTORIES) == 0


def test_a_retired_history_list_for_one_character_is_a_note_not_a_failure(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.gone = 404

    async def go() -> tuple[list[Conversation], list[str]]:
        async with make(server) as provider:
            char = Character(fake.character_ids()[0], "")
            return [c async for c in provider.conversations(char)], provider.notes

    convs, notes = run(go())
    assert convs == []
    assert notes == ["This account has no legacy histories (Character.AI answered 404 "
                     "Not Found)."]


def test_retired_messages_are_not_found_and_never_reported_erased(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 3)
    targets = [history_target(fake, history_id),
               *message_targets(fake, history_id, fake.message_ids(history_id)[:1])]
    fake.gone = True
    with pytest.raises(NotFound, match="410"):
        run(read(make(server), history_id))
    outcomes = run(erase(make(server), targets))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "410" in outcomes[0].detail
    with pytest.raises(NotFound):
        run(verify(make(server), targets))
    assert fake.count("POST", DELETE) == 0


# -- errors ------------------------------------------------------------------------------


def test_a_short_retry_after_is_waited_out(server: FakeServer,
                                           fake: CharacterAILegacyFake) -> None:
    fake.retry_after = 0.05
    fake.fail_next(1, 429)
    assert len(run(listing(make(server)))) == 6
    assert fake.count("GET", RECENT) == 2


def test_a_5xx_burst_on_reads_is_retried_then_beyond_is_temporary(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.fail_next(2, 503)
    assert len(run(listing(make(server, retries=2)))) == 6
    fake.fail_next(3, 502)
    with pytest.raises(TemporaryError) as caught:
        run(listing(make(server, retries=2)))
    assert caught.value.status == 502


def test_malformed_json_raises_protocol_error(server: FakeServer,
                                              fake: CharacterAILegacyFake) -> None:
    fake.malformed_next(1)
    with pytest.raises(ProtocolError):
        run(listing(make(server)))


def test_a_csrf_page_is_a_permanent_error_not_an_auth_error(
    server: FakeServer, fake: CharacterAILegacyFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = b"<html><body><h1>Forbidden (403)</h1><p>CSRF verification failed.</p></body></html>"
    monkeypatch.setattr(fake, "route", lambda *args: FakeResponse(
        403, {"Content-Type": "text/html"}, page))
    with pytest.raises(PermanentError, match="CSRF") as caught:
        run(listing(make(server)))
    assert not isinstance(caught.value, AuthError)


def test_the_token_and_message_text_never_reach_the_logs(
    server: FakeServer, fake: CharacterAILegacyFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    history_id = new_history(fake, 4)
    history = fake.history(history_id)
    assert history is not None
    texts = [m.text for m in history.messages]
    fake.fail_next(1, 503)

    async def go() -> None:
        async with make(server) as provider:
            await provider.check()
            [m async for m in provider.messages(Conversation(history_id, ""))]
            await provider.erase(message_targets(fake, history_id,
                                                 fake.message_ids(history_id)[:1]))
        async with make(server, token="w" * 40) as bad:
            with pytest.raises(AuthError):
                await bad.check()

    run(go())
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert f"GET {USER} -> 503" in caplog.text
    assert DEMO_TOKEN not in logged and "w" * 40 not in logged
    assert not any(t in logged for t in texts)
    assert server.url not in logged and history_id not in logged


def test_in_process_transport_works_like_the_server(fake: CharacterAILegacyFake) -> None:
    history_id = new_history(fake, 3)
    targets = message_targets(fake, history_id, fake.message_ids(history_id))

    async def go() -> list[str]:
        async with CharacterAILegacyProvider({"token": DEMO_TOKEN}, {},
                                             transport=fake.transport(),
                                             budget=RateBudget(1000, 1000)) as provider:
            return [o.status for o in await provider.erase(targets)]

    assert run(go()) == ["erased"] * 3
    assert fake.count("POST", DELETE) == 1
