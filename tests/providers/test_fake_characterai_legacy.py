"""The Character.AI legacy histories fake, spoken to over a real loopback socket with httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.fakes.base import FakeServer
from providers.fakes.characterai import DEMO_TOKEN as NEO_DEMO_TOKEN
from providers.fakes.characterai_legacy import (
    DELETE,
    DEMO_TOKEN,
    HISTORIES,
    MESSAGES,
    RECENT,
    USER,
    CharacterAILegacyFake,
)

AUTH = {"Authorization": f"Token {DEMO_TOKEN}"}


def make_fake() -> CharacterAILegacyFake:
    return CharacterAILegacyFake(seed=11, characters=2, histories=3)


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as c:
        yield c


def histories(client: httpx.Client, char_id: str, number: int = 999,
              path: str = HISTORIES[0]) -> list[dict[str, Any]]:
    response = client.post(path, json={"external_id": char_id, "number": number})
    assert response.status_code == 200
    return list(response.json()["histories"])


def page(client: httpx.Client, history_id: str, page_num: int | None = None) -> httpx.Response:
    params: dict[str, Any] = {"history_external_id": history_id}
    if page_num is not None:
        params["page_num"] = page_num
    return client.get(MESSAGES, params=params)


def delete(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post(DELETE, json=body)


def test_the_token_user_is_described_and_no_header_is_anonymous(
    client: httpx.Client, server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    inner = client.get(USER).json()["user"]["user"]
    assert inner["id"] == fake.account["id"]
    assert inner["username"] == fake.account["username"] != "ANONYMOUS"
    bare = httpx.get(server.url + USER, timeout=5).json()
    assert bare["user"]["user"]["username"] == "ANONYMOUS"
    refused = httpx.get(server.url + RECENT, timeout=5)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Authentication credentials were not provided."}


def test_a_wrong_or_revoked_token_answers_401_invalid_token(
    client: httpx.Client, server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    wrong = httpx.get(server.url + USER, headers={"Authorization": "Token " + "x" * 40},
                      timeout=5)
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token."}
    assert wrong.headers["WWW-Authenticate"] == "Token"
    assert client.get(USER).status_code == 200
    fake.revoke_credentials()
    assert client.get(USER).json() == {"detail": "Invalid token."}


def test_the_chat_v2_fakes_demo_token_is_accepted_too(server: FakeServer) -> None:
    neo = {"Authorization": f"Token {NEO_DEMO_TOKEN}"}
    assert NEO_DEMO_TOKEN != DEMO_TOKEN
    assert httpx.get(server.url + RECENT, headers=neo, timeout=5).status_code == 200


def test_a_guest_token_is_anonymous_and_asked_to_log_in(
    server: FakeServer, fake: CharacterAILegacyFake
) -> None:
    fake.anonymous_tokens = frozenset({"guest-token"})
    guest = {"Authorization": "Token guest-token"}
    user = httpx.get(server.url + USER, headers=guest, timeout=5).json()
    assert user["user"]["user"]["username"] == "ANONYMOUS"
    recent = httpx.get(server.url + RECENT, headers=guest, timeout=5)
    assert (recent.status_code, recent.json()) == (200, {"force_login": True})


def test_methods_and_paths_are_checked(client: httpx.Client) -> None:
    assert client.get(HISTORIES[0]).status_code == 405
    assert client.post(RECENT).status_code == 405
    assert client.get("/chat/unknown/").status_code == 404


def test_recent_characters_are_newest_first_with_participant_name(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    rows = client.get(RECENT).json()["characters"]
    assert sorted(r["external_id"] for r in rows) == sorted(fake.character_ids())
    assert [r["participant__name"] for r in rows] == [
        fake.characters[r["external_id"]].name for r in rows]
    assert all("name" not in r and len(r["external_id"]) == 43 for r in rows)
    times = [r["max_last_interaction"] for r in rows]
    assert times == sorted(times, reverse=True) and times[0].endswith("Z")


def test_both_history_paths_list_newest_first_up_to_number(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    char_id = fake.character_ids()[0]
    listed = histories(client, char_id)
    assert histories(client, char_id, path=HISTORIES[1]) == listed
    assert {h["external_id"] for h in listed} == set(fake.characters[char_id].histories)
    last = [h["last_interaction"] for h in listed]
    assert last == sorted(last, reverse=True)
    assert all(h["created"] <= h["last_interaction"] for h in listed)
    assert all(len(h["msgs"]) == 2 for h in listed)
    assert [h["external_id"] for h in histories(client, char_id, number=2)] == [
        h["external_id"] for h in listed[:2]]
    assert histories(client, "no-such-character") == []
    bad = client.post(HISTORIES[0], json={"external_id": char_id, "number": "all"})
    assert bad.status_code == 400 and bad.json()["status"].startswith("Error")


def test_messages_page_20_at_a_time_from_the_newest(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    char_id = fake.character_ids()[0]
    history_id = fake.add_history(char_id, messages=45, alternatives=0)
    uuids = fake.message_ids(history_id)
    first = page(client, history_id).json()
    assert first == page(client, history_id, 1).json()
    assert [m["uuid"] for m in first["messages"]] == uuids[25:]
    assert (first["next_page"], first["has_more"]) == (2, True)
    second = page(client, history_id, 2).json()
    assert [m["uuid"] for m in second["messages"]] == uuids[5:25]
    last = page(client, history_id, 3).json()
    assert [m["uuid"] for m in last["messages"]] == uuids[:5]
    assert (last["next_page"], last["has_more"]) == (4, False)
    assert page(client, history_id, 4).json() == {"messages": [], "next_page": 5,
                                                  "has_more": False}
    ids = [m["id"] for p in (last, second, first) for m in p["messages"]]
    assert ids == sorted(ids) and ids[0] > 10**12


def test_a_history_of_exactly_20_is_one_page(client: httpx.Client,
                                            fake: CharacterAILegacyFake) -> None:
    history_id = fake.add_history(fake.character_ids()[0], messages=20, alternatives=0)
    only = page(client, history_id).json()
    assert len(only["messages"]) == 20 and only["has_more"] is False


def test_messages_are_the_documented_history_message_shape(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    char_id = fake.character_ids()[1]
    history_id = fake.add_history(char_id, messages=4, alternatives=0)
    rows = page(client, history_id).json()["messages"]
    assert [m["src__is_human"] for m in rows] == [False, True, False, True]
    greeting = rows[0]
    assert greeting["text"] == fake.characters[char_id].greeting
    assert greeting["src__name"] == fake.characters[char_id].name
    assert greeting["src"].startswith("internal_id:") and greeting["tgt"] == rows[1]["src"]
    for key in ("id", "uuid", "text", "src", "tgt", "is_alternative", "image_rel_path",
                "image_prompt_text", "deleted", "src__name", "src__user__username",
                "src__is_human", "src__character__avatar_file_name", "src_char",
                "responsible_user__username"):
        assert key in greeting


def test_alternatives_are_listed_and_count_towards_the_page(
    client: httpx.Client,
) -> None:
    fake = CharacterAILegacyFake(seed=2, characters=1, histories=1, messages=(40, 40),
                                 alternatives=1.0)
    history = next(iter(fake.characters.values())).histories
    [history_id] = list(history)
    with fake.serve() as running:
        first = httpx.get(running.url + MESSAGES, headers=AUTH, timeout=5,
                          params={"history_external_id": history_id}).json()
    assert len(first["messages"]) == 20
    assert any(m["is_alternative"] for m in first["messages"])
    assert len(fake.message_ids(history_id)) == 40
    assert len(history[history_id].messages) > 40


def test_bad_message_queries_answer_400_and_unknown_history_404(
    client: httpx.Client,
) -> None:
    assert client.get(MESSAGES).status_code == 400
    assert page(client, "no-such-history").status_code == 404
    assert page(client, "no-such-history").json() == {"detail": "Not found."}
    assert client.get(MESSAGES, params={"history_external_id": "x",
                                        "page_num": "zero"}).status_code == 400


def test_delete_by_uuid_removes_and_ignores_unknown_uuids(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    history_id = fake.add_history(fake.character_ids()[0], messages=6, alternatives=0)
    before = fake.message_ids(history_id)
    response = delete(client, {"history_id": history_id,
                               "uuids_to_delete": [before[1], "not-a-uuid"]})
    assert (response.status_code, response.json()) == (200, {"status": "OK"})
    listed = [m["uuid"] for m in page(client, history_id).json()["messages"]]
    assert listed == [before[0], *before[2:]]
    assert dict(fake.deletes) == {before[1]: 1}
    emptied = delete(client, {"history_id": history_id, "uuids_to_delete": listed})
    assert emptied.status_code == 200
    assert page(client, history_id).json()["messages"] == []  # the history remains


def test_the_old_ids_to_delete_key_is_refused(client: httpx.Client,
                                             fake: CharacterAILegacyFake) -> None:
    history_id = fake.add_history(fake.character_ids()[0], messages=3, alternatives=0)
    before = fake.message_ids(history_id)
    response = delete(client, {"history_id": history_id, "ids_to_delete": before[:1]})
    assert response.status_code == 400
    assert response.json() == {"status": "Error: uuids_to_delete required"}
    assert fake.message_ids(history_id) == before
    assert delete(client, {"uuids_to_delete": before[:1]}).status_code == 400
    unknown = delete(client, {"history_id": "no-such-history", "uuids_to_delete": []})
    assert unknown.status_code == 404


def test_soft_delete_keeps_the_message_listed_as_deleted(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    fake.soft_delete = True
    history_id = fake.add_history(fake.character_ids()[0], messages=3, alternatives=0)
    victim = fake.message_ids(history_id)[2]
    delete(client, {"history_id": history_id, "uuids_to_delete": [victim]})
    rows = page(client, history_id).json()["messages"]
    assert [m["deleted"] for m in rows] == [False, False, True]
    assert victim not in fake.message_ids(history_id)
    delete(client, {"history_id": history_id, "uuids_to_delete": [victim]})
    assert fake.deletes[victim] == 1


def test_max_delete_refuses_longer_lists(client: httpx.Client,
                                         fake: CharacterAILegacyFake) -> None:
    fake.max_delete = 2
    history_id = fake.add_history(fake.character_ids()[0], messages=3, alternatives=0)
    uuids = fake.message_ids(history_id)
    assert delete(client, {"history_id": history_id, "uuids_to_delete": uuids}
                  ).status_code == 400
    assert fake.message_ids(history_id) == uuids


@pytest.mark.parametrize("gone", [True, 404])
def test_gone_retires_every_legacy_path_with_an_html_page(
    client: httpx.Client, fake: CharacterAILegacyFake, gone: bool | int
) -> None:
    fake.gone = gone
    status = 410 if gone is True else 404
    char_id = fake.character_ids()[0]
    answers = [client.get(RECENT), client.post(HISTORIES[0], json={"external_id": char_id}),
               client.post(HISTORIES[1], json={"external_id": char_id}),
               page(client, "x"), delete(client, {"history_id": "x", "uuids_to_delete": []}),
               httpx.get(str(client.base_url) + RECENT, timeout=5)]  # even without a token
    assert {a.status_code for a in answers} == {status}
    assert all(a.headers["Content-Type"] == "text/html" for a in answers)
    assert f"<title>{status} " in answers[0].text
    assert client.get(USER).status_code == 200


def test_rate_limit_answers_429_with_retry_after_and_drf_detail(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    fake.rate_limit = 2
    fake.retry_after = 7
    assert [client.get(USER).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get(USER)
    assert refused.headers["Retry-After"] == "7"
    assert refused.json() == {"detail": "Request was throttled. Expected available in 7 "
                                        "seconds."}


def test_fault_knobs_answer_5xx_then_broken_json(client: httpx.Client,
                                                 fake: CharacterAILegacyFake) -> None:
    fake.fail_next(1, 503)
    fake.malformed_next(1)
    assert client.get(RECENT).status_code == 503
    broken = client.get(RECENT)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert client.get(RECENT).status_code == 200
    assert fake.count("GET", RECENT) == 3


def test_reset_after_delete_drops_the_connection_after_deleting(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    history_id = fake.add_history(fake.character_ids()[0], messages=3, alternatives=0)
    victim = fake.message_ids(history_id)[0]
    fake.reset_after_delete_next()
    with pytest.raises(httpx.RemoteProtocolError):
        delete(client, {"history_id": history_id, "uuids_to_delete": [victim]})
    assert victim not in fake.message_ids(history_id)
    assert fake.deletes[victim] == 1


def _snapshot(fake: CharacterAILegacyFake) -> str:
    def call(method: str, path: str, body: Any = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        return json.loads(fake.handle(method, path, AUTH, raw).body)

    data: dict[str, Any] = {"recent": call("GET", RECENT)}
    for char_id in fake.character_ids():
        for h in call("POST", HISTORIES[0], {"external_id": char_id})["histories"]:
            data[h["external_id"]] = [
                call("GET", f"{MESSAGES}?history_external_id={h['external_id']}&page_num={n}")
                for n in (1, 2, 3)]
    return json.dumps(data, sort_keys=True)


def test_same_seed_gives_the_same_histories() -> None:
    assert _snapshot(CharacterAILegacyFake(seed=3)) == _snapshot(CharacterAILegacyFake(seed=3))
    assert _snapshot(CharacterAILegacyFake(seed=3)) != _snapshot(CharacterAILegacyFake(seed=4))


def test_sized_gives_exact_counts_for_paging_edge_cases() -> None:
    fake = CharacterAILegacyFake.sized(conversations=3, messages=21, seed=1)
    assert len(fake.conversation_ids()) == 3
    assert all(len(fake.message_ids(h)) == 21 for h in fake.conversation_ids())
    empty = CharacterAILegacyFake.sized(conversations=2, messages=0)
    assert all(fake.message_ids(h) == [] for h in empty.conversation_ids())
    secrets, options = fake.client_config("http://127.0.0.1:1")
    assert secrets == {"token": DEMO_TOKEN} and options == {"plus_url": "http://127.0.0.1:1"}
    assert len(DEMO_TOKEN) == 40


def test_in_process_transport_answers_like_the_server(
    client: httpx.Client, fake: CharacterAILegacyFake
) -> None:
    async def over_transport() -> Any:
        async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake",
                                     headers=AUTH) as c:
            return (await c.get(RECENT)).json()

    assert asyncio.run(over_transport()) == client.get(RECENT).json()


def test_dump_and_load_round_trip_gives_identical_answers() -> None:
    original = CharacterAILegacyFake(seed=5, characters=2, histories=2, alternatives=0.5)
    history_id = sorted(original.conversation_ids())[0]
    original.handle("POST", DELETE, AUTH, json.dumps({
        "history_id": history_id,
        "uuids_to_delete": original.message_ids(history_id)[:2]}).encode())
    data = json.loads(json.dumps(original.dump()))
    copy = CharacterAILegacyFake(seed=99, characters=1, histories=1)
    copy.load(data)
    assert _snapshot(copy) == _snapshot(original)
    assert copy.dump() == data


def test_a_persisted_delete_survives_a_reload(tmp_path: Path) -> None:
    state = tmp_path / "legacy.json"
    fake = CharacterAILegacyFake(seed=6, characters=1, histories=2)
    assert fake.persist(state) is False
    history_id = sorted(fake.conversation_ids())[0]
    gone = fake.message_ids(history_id)[0]
    written = state.stat().st_mtime_ns
    fake.handle("POST", DELETE, AUTH, json.dumps({
        "history_id": history_id, "uuids_to_delete": ["unknown"]}).encode())
    assert state.stat().st_mtime_ns == written  # nothing removed, nothing saved
    fake.handle("POST", DELETE, AUTH, json.dumps({
        "history_id": history_id, "uuids_to_delete": [gone]}).encode())
    again = CharacterAILegacyFake(seed=7, characters=3, histories=1)
    assert again.persist(state) is True
    assert again.conversation_ids() == fake.conversation_ids()
    assert gone not in again.message_ids(history_id)
    assert again.message_ids(history_id) == fake.message_ids(history_id)
