"""CharacterAIProvider checking, listing, reading and failing, against its loopback fake."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
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
from providers.characterai.chat import CharacterAIProvider
from providers.characterai.errors import classify_response
from providers.fakes import FakeResponse, FakeServer
from providers.fakes.characterai import DEMO_TOKEN, CharacterAIFake
from providers.fakes.characterai_data import turn_json, user_json
from tests.providers.characterai_helpers import (
    _call,
    active_chat,
    chat_of,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    message_targets,
    remove_path,
    run,
)
from tests.providers.loopback import policy


def read_messages(server: FakeServer, chat_id: str) -> list[Message]:
    async def go() -> list[Message]:
        async with make(server) as provider:
            return [m async for m in provider.messages(Conversation(chat_id, ""))]

    return run(go())


# -- account ----------------------------------------------------------------------------

def test_check_names_the_account_from_the_plus_user(server: FakeServer,
                                                    fake: CharacterAIFake) -> None:
    account: Account = run(_call(make(server), "check"))
    assert account == Account(id=str(fake.user_id), name=fake.user_name)


def test_a_pasted_token_prefix_is_removed_and_an_odd_length_is_noted(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    assert run(_call(make(server, token=f"  Token {DEMO_TOKEN} "), "check")).name
    fake.tokens = frozenset({DEMO_TOKEN, "short-token"})
    odd = make(server, token="short-token")
    assert run(_call(odd, "check")).id == str(fake.user_id)
    assert any("40 characters" in note for note in odd.notes)
    assert not make(server).notes


def test_the_account_check_goes_to_the_plus_host(fake: CharacterAIFake) -> None:
    other = CharacterAIFake(seed=9, characters=0, username="plus-person")
    with other.serve() as plus, fake.serve() as neo:
        provider = CharacterAIProvider({"token": DEMO_TOKEN},
                                       {"neo_url": neo.url, "plus_url": plus.url},
                                       budget=RateBudget(1000, 1000), policy=policy())
        assert run(_call(provider, "check")).name == "plus-person"
    assert fake.count("GET", "/chat/user/") == 0


def test_an_anonymous_session_is_an_auth_error(
    server: FakeServer, fake: CharacterAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "route", lambda *args: FakeResponse(
        200, {"Content-Type": "application/json"}, json.dumps(user_json(0, "ANONYMOUS")).encode()))
    with pytest.raises(AuthError, match="anonymous"):
        run(_call(make(server), "check"))


def test_wrong_and_revoked_tokens_raise_auth_error_with_the_hint(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    with pytest.raises(AuthError, match=r"Invalid token\..*Maybe your token is invalid\?"):
        run(_call(make(server, token="x" * 40), "check"))
    fake.revoke_credentials()
    with pytest.raises(AuthError) as caught:
        run(_call(make(server), "check"))
    assert caught.value.status == 401


def test_missing_token_and_urls_with_credentials_are_refused() -> None:
    with pytest.raises(PermanentError, match="Token"):
        CharacterAIProvider({"token": "Token  "}, {})
    with pytest.raises(PermanentError, match="credentials"):
        CharacterAIProvider({"token": DEMO_TOKEN}, {"plus_url": "https://u:p@plus.example"})
    provider = CharacterAIProvider({"token": DEMO_TOKEN}, {})
    assert provider.options == {"neo_url": "https://neo.character.ai",
                                "plus_url": "https://plus.character.ai"}
    assert DEMO_TOKEN not in repr(provider)


# -- listing ----------------------------------------------------------------------------

def test_characters_come_from_recent_chats_once_each(server: FakeServer,
                                                     fake: CharacterAIFake) -> None:
    async def go() -> list[Character]:
        async with make(server) as provider:
            return [c async for c in provider.characters()]

    found = run(go())
    assert sorted(c.provider_id for c in found) == sorted(fake.character_ids())
    assert {c.name for c in found} == {ch.name for ch in fake.characters.values()}


def test_conversations_include_archived_chats_titles_and_last_message_time(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    async def go() -> list[Conversation]:
        async with make(server) as provider:
            return [c async for c in provider.conversations()]

    found = run(go())
    assert len(found) == len({c.provider_id for c in found}) == 6  # recents deduped
    assert sum(c.state == "archived" for c in found) == 2
    for conv in found:
        chat = fake.find_chat(conv.provider_id)
        assert chat is not None and conv.character_id == chat.character_id
        assert conv.title == chat.name
        assert conv.started_at == chat.created
        assert conv.last_message_at == chat.turns[-1].at


def test_a_character_whose_chats_are_all_archived_is_not_seen(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    hidden = fake.character_ids()[1]
    for chat_id in fake.chat_ids(hidden):
        chat_of(fake, chat_id).state = "STATE_ARCHIVED"

    async def go() -> list[str]:
        async with make(server) as provider:
            return [c.provider_id async for c in provider.characters()]

    assert run(go()) == [fake.character_ids()[0]]


@pytest.mark.parametrize("style", ["null", "absent", "empty", "extra_page"])
@pytest.mark.parametrize("turns", [0, 1, 50, 51, 120])
def test_messages_page_through_every_turn_oldest_first(
    server: FakeServer, fake: CharacterAIFake, style: str, turns: int
) -> None:
    fake.last_token_style = style
    chat_id = fake.add_chats(fake.character_ids()[0], 1, turns=turns)[0]
    found = read_messages(server, chat_id)
    assert [m.provider_id for m in found] == fake.message_ids(chat_id)
    assert [m.position for m in found] == list(range(turns))
    pages = fake.count("GET", f"/turns/{chat_id}/")
    full_pages = -(-turns // 50) or 1
    extra = style == "extra_page" and turns and turns % 50 == 0
    assert pages == full_pages + (1 if extra else 0)


@pytest.mark.parametrize(("back", "pages"), [(3, 1), (50, 1), (51, 2), (120, 3)])
def test_newest_messages_read_only_the_pages_back_to_the_known_turn(
    server: FakeServer, fake: CharacterAIFake, back: int, pages: int
) -> None:
    chat_id = fake.add_chats(fake.character_ids()[0], 1, turns=130)[0]
    ids = fake.message_ids(chat_id)
    known = ids[-back]  # `back` turns from the newest end, the newest being 1
    before = fake.count("GET", f"/turns/{chat_id}/")

    async def go() -> list[Message] | None:
        async with make(server) as provider:
            return await provider.newest_messages(Conversation(chat_id, ""), known)

    newest = run(go())
    assert newest is not None
    assert [m.provider_id for m in newest] == ids[-back:]
    assert [m.position for m in newest] == list(range(back))
    assert fake.count("GET", f"/turns/{chat_id}/") - before == pages


def test_messages_carry_primary_text_authors_times_and_pins(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = fake.add_chats(fake.character_ids()[0], 1, turns=40)[0]
    chat = fake.find_chat(chat_id)
    assert chat is not None
    chat.turns[3].pinned = True
    found = read_messages(server, chat_id)
    for message, turn in zip(found, chat.turns, strict=True):
        primary = next(c.text for c in turn.candidates if c.id == turn.primary)
        assert message.text == primary
        assert message.author == turn.author_name
        assert message.is_human is turn.is_human  # character turns lack is_human
        assert message.created_at == turn.at
        assert message.pinned is turn.pinned
    assert found[0].is_human is False and found[1].is_human is True
    assert any(len(t.candidates) > 1 for t in chat.turns)


def test_sparse_answers_are_read_with_missing_keys_as_none(
    server: FakeServer, fake: CharacterAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, Any] = {
        "/chats/recent/": {"chats": [{"chat_id": "c1", "character_id": "ch1"}, {"name": "x"}]},
        "/chats/": {},
        "/turns/c1/": {"turns": [
            {"turn_key": {"turn_id": "t1"}},
            {"turn_key": {"turn_id": "t2"}, "author": {"author_id": "123"},
             "candidates": [{"candidate_id": "a", "raw_content": "first"},
                            {"candidate_id": "b", "raw_content": "second"}]},
            {"author": {"name": "no id"}}]},
    }
    monkeypatch.setattr(fake, "route", lambda method, path, headers, body: FakeResponse(
        200, {"Content-Type": "application/json"}, json.dumps(answers[path]).encode()))

    async def go() -> tuple[list[Character], list[Conversation], list[Message]]:
        async with make(server) as provider:
            chars = [c async for c in provider.characters()]
            convs = [c async for c in provider.conversations()]
            return chars, convs, [m async for m in provider.messages(convs[0])]

    chars, convs, msgs = run(go())
    assert chars == [Character("ch1", "")]
    assert convs == [Conversation("c1", "ch1")]
    assert [(m.provider_id, m.is_human, m.text, m.author) for m in msgs] == [
        ("t2", True, "second", "You"), ("t1", False, "", "Character")]


def test_a_repeating_next_token_is_a_protocol_error(
    server: FakeServer, fake: CharacterAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = fake.find_chat(active_chat(fake))
    assert chat is not None
    # A server that answers every page with the same turns and the same token.
    page = {"turns": [turn_json(chat, t) for t in chat.turns[:-3:-1]],
            "meta": {"next_token": "same"}}
    monkeypatch.setattr(fake, "route", lambda *args: FakeResponse(
        200, {"Content-Type": "application/json"}, json.dumps(page).encode()))
    with pytest.raises(ProtocolError, match="next_token"):
        read_messages(server, chat.id)
    assert fake.count("GET", f"/turns/{chat.id}/") == 2


def test_an_unknown_chat_raises_not_found(server: FakeServer) -> None:
    with pytest.raises(NotFound, match="Chat not found"):
        read_messages(server, "no-such-chat")


# -- errors -----------------------------------------------------------------------------

def test_cloudflare_1015_pages_are_rate_limited_with_a_readable_reason(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    for status, plain in ((429, False), (403, False), (429, True)):
        fake.cloudflare_block_next(1, status, plain=plain, retry_after=30 if plain else None)
        with pytest.raises(RateLimited) as caught:
            run(_call(make(server), "check"))
        assert str(caught.value) == ("Character.AI's Cloudflare front blocked the request "
                                     "(error 1015: rate limited)")
        assert caught.value.retry_after == (30 if plain else None)
        assert "<" not in str(caught.value)


def test_a_json_429_with_retry_after_is_rate_limited(server: FakeServer,
                                                     fake: CharacterAIFake) -> None:
    fake.retry_after = 30
    fake.fail_next(1, 429)
    with pytest.raises(RateLimited) as caught:
        run(_call(make(server), "check"))
    assert caught.value.retry_after == 30
    fake.retry_after = 0.01
    fake.fail_next(1, 429)
    assert run(_call(make(server), "check")).id == str(fake.user_id)


def test_html_5xx_pages_are_retried_on_reads_then_temporary(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    fake.html_error_next(2, 502)
    assert run(_call(make(server, retries=2), "check")).id == str(fake.user_id)
    fake.html_error_next(3, 503)
    with pytest.raises(TemporaryError) as caught:
        run(_call(make(server, retries=2), "check"))
    assert caught.value.status == 503
    assert "<" not in str(caught.value) and "cloudflare" not in str(caught.value)


def test_malformed_json_raises_protocol_error(server: FakeServer,
                                              fake: CharacterAIFake) -> None:
    fake.malformed_next(1)
    with pytest.raises(ProtocolError):
        run(_call(make(server), "check"))


def _response(status: int, body: str | dict[str, Any], **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://neo.character.ai/chats/")
    if isinstance(body, dict):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=body, headers=headers, request=request)


def test_character_ai_error_bodies_map_to_the_right_errors() -> None:
    neo = {"command": "neo_error", "comment": "chat does not exist", "error_code": 7}
    cases: list[tuple[httpx.Response, type[Exception], str]] = [
        (_response(400, {"command": "neo_error", "comment": "bad turn"}), PermanentError,
         "bad turn"),
        (_response(200, neo), NotFound, "error_code 7"),
        (_response(403, {"detail": "Authentication credentials were not provided."}),
         AuthError, "Maybe your token is invalid?"),
        (_response(403, {"command": "neo_error", "comment": "not yours"}), PermanentError,
         "not yours"),
        (_response(200, {"force_login": True}), AuthError, "force_login"),
        (_response(200, {"status": "Error: history is locked"}), PermanentError, "locked"),
        (_response(404, "<html><title>Not Found</title></html>",
                   **{"Content-Type": "text/html"}), NotFound, "Not Found"),
        (_response(403, "<html><h1>Forbidden (403)</h1><p>CSRF verification failed. "
                        "Request aborted.</p></html>", **{"Content-Type": "text/html"}),
         PermanentError, "CSRF"),
        (_response(403, "<!DOCTYPE html><title>Just a moment...</title>cf_chl",
                   **{"Content-Type": "text/html"}), TemporaryError, "Cloudflare"),
    ]
    for response, kind, text in cases:
        error = classify_response(response)
        assert type(error) is kind, (response.status_code, error)
        assert text in str(error)
    assert classify_response(_response(200, {"turns": []})) is None


def test_tokens_urls_and_message_text_never_reach_the_logs(
    server: FakeServer, fake: CharacterAIFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat_id = active_chat(fake)
    chat = fake.find_chat(chat_id)
    assert chat is not None
    texts = [c.text for t in chat.turns for c in t.candidates]
    fake.html_error_next(1, 502)
    fake.cloudflare_block_next(1, 429)

    async def go() -> None:
        async with make(server) as provider:
            with pytest.raises(RateLimited):
                await provider.check()
            await provider.check()
            [m async for m in provider.messages(Conversation(chat_id, ""))]
            await provider.erase(message_targets(fake, chat_id, 1))
        async with make(server, token="wrong-token-abcdef") as bad:
            with pytest.raises(AuthError) as caught:
                await bad.check()
            assert "wrong-token-abcdef" not in str(caught.value)

    run(go())
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "GET /chat/user/ -> 429" in caplog.text and "GET /chat/user/ -> 502" in caplog.text
    assert DEMO_TOKEN not in logged and "wrong-token-abcdef" not in logged
    assert not any(t in logged for t in texts)
    assert server.url not in logged and "next_token" not in logged


def test_in_process_transport_works_like_the_server(fake: CharacterAIFake) -> None:
    chat_id = active_chat(fake)
    targets = message_targets(fake, chat_id, 3)
    secrets, options = fake.client_config("http://fake.invalid")
    provider = CharacterAIProvider(secrets, options, transport=fake.transport(),
                                   budget=RateBudget(1000, 1000),
                                   policy=policy(allowed_hosts=("fake.invalid",)))
    assert [o.status for o in run(_call(provider, "erase", targets))] == ["erased"] * 3
    assert fake.count("POST", remove_path(chat_id)) == 1
