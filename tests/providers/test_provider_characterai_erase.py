"""CharacterAIProvider erasing and verifying turns and whole chats, against its loopback fake."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from providers import AuthError, Target
from providers.fakes import FakeResponse, FakeServer
from providers.fakes.characterai import CharacterAIFake
from tests.providers.characterai_helpers import (
    active_chat,
    chat_of,
    erase,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    message_targets,
    remove_path,
    verify,
)


def test_erase_messages_in_batches_of_50_then_verify_gone(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    fake.max_turn_ids = 50
    chat_id = fake.add_chats(fake.character_ids()[0], 1, turns=120)[0]
    targets = message_targets(fake, chat_id, 110)
    outcomes = erase(server, targets)
    assert [o.status for o in outcomes] == ["erased"] * 110
    assert [o.target for o in outcomes] == targets
    assert fake.count("POST", remove_path(chat_id)) == 3
    assert set(fake.deletes.values()) == {1} and len(fake.deletes) == 110
    assert verify(server, targets) == ["gone"] * 110
    assert len(fake.message_ids(chat_id)) == 10


def test_erasing_again_reports_already_gone_without_sending(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    targets = message_targets(fake, chat_id, 2)
    erase(server, targets)
    again = erase(server, targets + [Target("message", "ghost", "no-such-chat")])
    assert [o.status for o in again] == ["already_gone"] * 3
    assert fake.count("POST", remove_path(chat_id)) == 1


def test_erasing_a_chat_removes_every_turn_and_archives_it(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = fake.add_chats(fake.character_ids()[0], 1, turns=75)[0]
    target = Target("conversation", chat_id, chat_id)
    [outcome] = erase(server, [target])
    assert outcome.status == "erased"
    assert outcome.detail == "all 75 messages removed and the chat archived"
    assert fake.message_ids(chat_id) == []
    assert chat_of(fake, chat_id).state == "STATE_ARCHIVED"
    assert fake.count("POST", remove_path(chat_id)) == 2
    assert fake.deletes[chat_id] == 1
    assert verify(server, [target]) == ["gone"]
    assert chat_id not in fake.conversation_ids()
    assert [o.status for o in erase(server, [target])] == ["already_gone"]
    assert fake.count("PATCH", f"/chat/{chat_id}/archive") == 1


def test_an_archived_chat_is_emptied_without_archiving_again(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    char_id = fake.character_ids()[0]
    chat_id = next(c for c in fake.chat_ids(char_id)
                   if chat_of(fake, c).state == "STATE_ARCHIVED")
    [outcome] = erase(server, [Target("conversation", chat_id, chat_id)])
    assert outcome.status == "erased" and "already archived" in outcome.detail
    assert fake.count("PATCH", f"/chat/{chat_id}/archive") == 0


def test_a_chat_the_chat_endpoint_does_not_know_is_still_emptied_while_it_lists_turns(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    fake.fail_next(1, 404, path=f"/chat/{chat_id}/")
    [outcome] = erase(server, [Target("conversation", chat_id, chat_id)])
    assert outcome.status == "erased"
    assert fake.message_ids(chat_id) == [] and fake.deletes[chat_id] == 1
    ghost = Target("conversation", "no-such-chat", "no-such-chat")
    assert [o.status for o in erase(server, [ghost])] == ["already_gone"]
    assert verify(server, [ghost]) == ["gone"]
    assert len(fake.deletes) == 1 + outcome.response["turns"]


def test_a_refused_archive_is_failed_not_erased(server: FakeServer,
                                                fake: CharacterAIFake) -> None:
    chat_id = active_chat(fake)
    count = len(fake.message_ids(chat_id))
    target = Target("conversation", chat_id, chat_id)
    fake.fail_next(1, 400, path=f"/chat/{chat_id}/archive")
    [outcome] = erase(server, [target])
    assert outcome.status == "failed"
    assert f"all {count} messages were removed, but the chat could not be archived" in (
        outcome.detail)
    assert "Injected failure" in outcome.detail
    assert verify(server, [target]) == ["present"]
    assert [o.status for o in erase(server, [target])] == ["erased"]


def test_a_lost_archive_answer_is_unknown_and_never_archived_twice(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    erase(server, message_targets(fake, chat_id))
    target = Target("conversation", chat_id, chat_id)
    fake.reset_after_delete_next(1)
    assert [o.status for o in erase(server, [target], retries=3)] == ["unknown"]
    assert [o.status for o in erase(server, [target])] == ["already_gone"]
    assert fake.deletes[chat_id] == 1


def test_reset_after_remove_gives_unknown_and_exactly_one_delete(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    targets = message_targets(fake, chat_id, 2)
    fake.reset_after_delete_next(1)
    assert [o.status for o in erase(server, targets, retries=3)] == ["unknown", "unknown"]
    assert fake.count("POST", remove_path(chat_id)) == 1
    assert verify(server, targets) == ["gone", "gone"]
    assert [o.status for o in erase(server, targets)] == ["already_gone"] * 2
    assert [fake.deletes[t.provider_id] for t in targets] == [1, 1]


def test_a_5xx_on_remove_is_not_resent_and_the_chat_is_not_archived(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    fake.html_error_next(1, 502)
    fake.fail_next(1, 503, path=remove_path(chat_id))
    target = Target("conversation", chat_id, chat_id)
    [outcome] = erase(server, [target], retries=3)
    assert outcome.status == "unknown"
    assert fake.count("POST", remove_path(chat_id)) == 1
    assert fake.count("PATCH", f"/chat/{chat_id}/archive") == 0
    assert verify(server, [target]) == ["present"]


def test_a_refused_remove_fails_the_batch_with_the_neo_comment(
    server: FakeServer, fake: CharacterAIFake
) -> None:
    chat_id = active_chat(fake)
    fake.fail_next(1, 400, path=remove_path(chat_id))
    outcomes = erase(server, message_targets(fake, chat_id, 2))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "Injected failure" in outcomes[0].detail


def test_auth_error_during_erase_keeps_settled_outcomes(
    server: FakeServer, fake: CharacterAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = active_chat(fake, 0), active_chat(fake, 1)
    targets = message_targets(fake, first, 1) + message_targets(fake, second, 1)
    real = fake.route

    def second_chat_refused(method: str, path: str, headers: Mapping[str, str],
                            body: bytes) -> FakeResponse:
        if path == remove_path(second):
            return FakeResponse(401, {"Content-Type": "application/json"},
                                b'{"detail": "Invalid token."}')
        return real(method, path, headers, body)

    monkeypatch.setattr(fake, "route", second_chat_refused)
    with pytest.raises(AuthError) as caught:
        erase(server, targets)
    assert [o.status for o in caught.value.partial] == ["erased"]
    assert caught.value.partial[0].target == targets[0]
