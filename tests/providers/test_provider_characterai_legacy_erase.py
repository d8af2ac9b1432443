"""CharacterAILegacyProvider erasing and verifying, against its fake over a real loopback
server: batches, whole histories, read-back first, uncertain answers, partial outcomes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from providers import AuthError, RateLimited, Target
from providers.characterai.legacy import DELETE
from providers.fakes.base import FakeResponse, FakeServer
from providers.fakes.characterai_legacy import CharacterAILegacyFake
from tests.providers.characterai_legacy_helpers import (
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


def test_erase_messages_in_batches_of_50_and_verify_them_gone(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.max_delete = 50
    history_id = new_history(fake, 120)
    before = fake.message_ids(history_id)
    targets = message_targets(fake, history_id, before[10:80])
    outcomes = run(erase(make(server), targets))
    assert [o.status for o in outcomes] == ["erased"] * 70
    assert [o.target for o in outcomes] == targets
    assert outcomes[0].response == {"status": "OK", "deleted": 1}
    assert fake.count("POST", DELETE) == 2
    assert set(fake.deletes.values()) == {1} and len(fake.deletes) == 70
    assert run(verify(make(server), targets)) == ["gone"] * 70
    assert fake.message_ids(history_id) == before[:10] + before[80:]


def test_erasing_a_history_deletes_every_message_and_alternative(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 25, alternatives=1.0)
    history = fake.history(history_id)
    assert history is not None
    every = [m.uuid for m in history.messages]
    target = history_target(fake, history_id)
    [outcome] = run(erase(make(server), [target]))
    assert outcome.status == "erased"
    assert outcome.detail == f"all {len(every)} messages deleted; the empty history remains"
    assert sorted(fake.deletes) == sorted(every)
    assert run(verify(make(server), [target])) == ["gone"]
    assert history_id in {c.provider_id for c in run(listing(make(server)))}
    assert run(read(make(server), history_id)) == []


def test_a_history_and_its_messages_in_one_call_send_each_uuid_once(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 4)
    uuids = fake.message_ids(history_id)
    targets = [*message_targets(fake, history_id, uuids[:2]), history_target(fake, history_id)]
    outcomes = run(erase(make(server), targets))
    assert [o.status for o in outcomes] == ["erased"] * 3
    assert fake.count("POST", DELETE) == 1
    assert dict(fake.deletes) == {u: 1 for u in uuids}


def test_erasing_again_reports_already_gone_without_sending(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 6)
    targets = [*message_targets(fake, history_id, fake.message_ids(history_id)[:2])]
    run(erase(make(server), targets))
    run(erase(make(server), [history_target(fake, history_id)]))
    again = run(erase(make(server), [*targets, history_target(fake, history_id)]))
    assert [o.status for o in again] == ["already_gone"] * 3
    assert "no longer lists" in again[0].detail
    assert fake.count("POST", DELETE) == 2


def test_an_unknown_history_is_already_gone_only_when_the_list_confirms_it(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    char_id = fake.character_ids()[1]
    ghosts = [Target("conversation", "ghost-1", "ghost-1", char_id),
              Target("message", "u-1", "ghost-2", ""),
              Target("message", "u-2", "", char_id)]
    outcomes = run(erase(make(server), ghosts))
    assert [o.status for o in outcomes] == ["already_gone", "already_gone", "failed"]
    assert run(verify(make(server), ghosts)) == ["gone", "gone", "present"]
    assert fake.count("POST", DELETE) == 0


def test_soft_deleted_messages_verify_as_soft_deleted(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.soft_delete = True
    history_id = new_history(fake, 4)
    targets = message_targets(fake, history_id, fake.message_ids(history_id)[1:3])
    assert [o.status for o in run(erase(make(server), targets))] == ["erased"] * 2
    assert run(verify(make(server), targets)) == ["soft_deleted"] * 2
    again = run(erase(make(server), targets))
    assert [o.status for o in again] == ["already_gone"] * 2
    assert "as deleted" in again[0].detail
    assert len(run(read(make(server), history_id))) == 2


def test_reset_after_delete_is_unknown_and_exactly_one_delete(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 3)
    uuids = fake.message_ids(history_id)
    targets = [*message_targets(fake, history_id, uuids[:1]), history_target(fake, history_id)]
    fake.reset_after_delete_next(1)
    outcomes = run(erase(make(server, retries=3), targets))
    assert [o.status for o in outcomes] == ["unknown", "unknown"]
    assert fake.count("POST", DELETE) == 1
    assert run(verify(make(server), targets)) == ["gone", "gone"]
    assert [o.status for o in run(erase(make(server), targets))] == ["already_gone"] * 2
    assert dict(fake.deletes) == {u: 1 for u in uuids}


def test_a_5xx_on_delete_is_not_resent(server: FakeServer, fake: CharacterAILegacyFake) -> None:
    history_id = new_history(fake, 3)
    targets = message_targets(fake, history_id, fake.message_ids(history_id)[:1])
    fake.fail_next(1, 503, path=DELETE)
    outcomes = run(erase(make(server, retries=3), targets))
    assert outcomes[0].status == "unknown"
    assert fake.count("POST", DELETE) == 1
    assert run(verify(make(server), targets)) == ["present"]


def test_a_refused_delete_fails_and_stops_asking(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.max_delete = 10  # below our batch of 50: every batch would be refused alike
    history_id = new_history(fake, 120)
    target = history_target(fake, history_id)
    [outcome] = run(erase(make(server), [target]))
    assert outcome.status == "failed"
    assert "at most 10" in outcome.detail
    assert fake.count("POST", DELETE) == 1
    assert run(verify(make(server), [target])) == ["present"]


def test_auth_error_during_erase_keeps_settled_outcomes(
    server: FakeServer, fake: CharacterAILegacyFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = new_history(fake, 2), new_history(fake, 2)
    targets = [history_target(fake, first), history_target(fake, second)]
    real = fake.route
    seen = {"deletes": 0}

    def second_delete_refused(method: str, path: str, headers: Mapping[str, str],
                              body: bytes) -> FakeResponse:
        if path == DELETE:
            seen["deletes"] += 1
            if seen["deletes"] == 2:
                return fake.error(401, "Invalid token.")
        return real(method, path, headers, body)

    monkeypatch.setattr(fake, "route", second_delete_refused)
    with pytest.raises(AuthError) as caught:
        run(erase(make(server), targets))
    assert [(o.target, o.status) for o in caught.value.partial] == [(targets[0], "erased")]
    assert fake.message_ids(second) != []


def test_a_long_rate_limit_on_delete_raises_with_what_was_settled(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    history_id = new_history(fake, 3)
    uuids = fake.message_ids(history_id)
    gone = message_targets(fake, history_id, uuids[:1])
    run(erase(make(server), gone))
    fake.retry_after = 30
    fake.fail_next(1, 429, path=DELETE)
    with pytest.raises(RateLimited) as caught:
        run(erase(make(server), [*gone, *message_targets(fake, history_id, uuids[1:2])]))
    assert caught.value.retry_after == 30
    assert [o.status for o in caught.value.partial] == ["already_gone"]
