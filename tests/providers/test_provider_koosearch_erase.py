"""KooSearchProvider erasing and verifying chats: batches, read-back, soft and partial deletes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers import AuthError, Target
from providers.fakes.base import FakeResponse, FakeServer
from providers.fakes.koosearch import KooSearchFake
from providers.koosearch.client import INVALID_ID, NOT_DELETED, SOFT_DELETED, KooSearchProvider
from tests.providers.koosearch_helpers import (
    chats_path,
    erase,
    intercept,
    make,
    make_fake,  # noqa: F401 - the conftest builds this module's fake with it
    run,
    targets_of,
)


async def verify(provider: KooSearchProvider, targets: list[Target]) -> list[str]:
    async with provider:
        return [p.state for p in await provider.verify(targets)]


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
