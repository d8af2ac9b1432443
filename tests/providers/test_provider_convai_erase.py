"""ConvaiProvider erasing and verifying sessions, against its fake over a real loopback server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from providers import AuthError, Character, ConvaiProvider, NotFound, Target
from providers.fakes import ConvaiFake, FakeResponse, FakeServer
from tests.providers.convai_helpers import (
    DELETE,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    run,
    session_targets,
)

SESSIONS = "/character/chatHistory/list"


async def erase(provider: ConvaiProvider, targets: list[Target]) -> list[Any]:
    async with provider:
        return await provider.erase(targets)


async def verify(provider: ConvaiProvider, targets: list[Target]) -> list[str]:
    async with provider:
        return [p.state for p in await provider.verify(targets)]


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
