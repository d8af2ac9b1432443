"""The Character.AI fake itself, spoken to over a real loopback socket with plain httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.fakes import FakeServer
from providers.fakes.characterai import DEMO_TOKEN, CharacterAIFake
from providers.fakes.characterai_data import Chat

ARCHIVED = "STATE_ARCHIVED"


def make_fake() -> CharacterAIFake:
    return CharacterAIFake(seed=11, characters=2, chats=3, turns=(10, 130), archived=1)


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Token {DEMO_TOKEN}"},
                      timeout=5) as c:
        yield c


def chat_of(fake: CharacterAIFake, chat_id: str) -> Chat:
    found = fake.find_chat(chat_id)
    assert found is not None
    return found


def chat_with(fake: CharacterAIFake, turns: int) -> str:
    return fake.add_chats(fake.character_ids()[0], 1, turns=turns)[0]


def pages(client: httpx.Client, chat_id: str, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {**params, **({"next_token": token} if token else {})}
        body = client.get(f"/turns/{chat_id}/", params=query).json()
        out.append(body)
        token = body["meta"].get("next_token") or ""
        if not body["turns"] or not token:
            return out


def test_demo_token_is_forty_characters() -> None:
    assert len(DEMO_TOKEN) == 40


def test_credentials_missing_wrong_and_revoked(server: FakeServer, client: httpx.Client,
                                               fake: CharacterAIFake) -> None:
    anonymous = httpx.get(server.url + "/chat/user/", timeout=5)
    assert anonymous.status_code == 200
    assert anonymous.json()["user"]["user"]["username"] == "ANONYMOUS"
    missing = httpx.get(server.url + "/chats/recent/", timeout=5)
    assert missing.status_code == 403
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = httpx.get(server.url + "/chats/recent/", timeout=5,
                      headers={"Authorization": "Token " + "x" * 40})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token."}
    assert client.get("/chats/recent/").status_code == 200
    fake.revoke_credentials()
    assert client.get("/chats/recent/").json() == {"detail": "Invalid token."}


def test_user_has_the_documented_nested_shape(client: httpx.Client,
                                              fake: CharacterAIFake) -> None:
    user = client.get("/chat/user/").json()["user"]
    assert user["user"]["id"] == fake.user_id
    assert user["user"]["username"] == fake.user_name != "ANONYMOUS"
    assert {"account", "is_human", "subscription"} <= set(user["user"])


def test_unknown_paths_methods_and_chats_answer_neo_errors(client: httpx.Client) -> None:
    unknown = client.get("/nowhere/")
    assert unknown.status_code == 404
    assert unknown.json() == {"command": "neo_error", "comment": "Not Found"}
    assert client.delete("/chats/recent/").status_code == 405
    for response in (client.get("/turns/no-chat/"), client.get("/chat/no-chat/"),
                     client.post("/turns/no-chat/remove", json={"turn_ids": ["a"]}),
                     client.patch("/chat/no-chat/archive", json={})):
        assert response.status_code == 404
        assert response.json() == {"command": "neo_error", "comment": "Chat not found"}


def test_recent_chats_hold_the_newest_active_chat_of_each_character(
    client: httpx.Client, fake: CharacterAIFake
) -> None:
    chats = client.get("/chats/recent/").json()["chats"]
    assert sorted(c["character_id"] for c in chats) == sorted(fake.character_ids())
    for chat in chats:
        newest_active = next(c for c in fake.chat_ids(chat["character_id"])
                             if chat_of(fake, c).state != ARCHIVED)
        assert chat["chat_id"] == newest_active
        assert chat["character_name"] == fake.characters[chat["character_id"]].name
        assert chat["create_time"].endswith("Z") and chat["state"] == "STATE_ACTIVE"


def test_chats_of_a_character_include_archived_with_previews(
    client: httpx.Client, fake: CharacterAIFake
) -> None:
    char_id = fake.character_ids()[1]
    answer = client.get("/chats/", params={"character_ids": char_id, "num_preview_turns": 2})
    chats = answer.json()["chats"]
    assert [c["chat_id"] for c in chats] == fake.chat_ids(char_id)
    assert [c["state"] for c in chats].count(ARCHIVED) == 1
    for chat in chats:
        turns = chat_of(fake, chat["chat_id"]).turns
        assert [t["turn_key"]["turn_id"] for t in chat["preview_turns"]] == [
            turns[-1].id, turns[-2].id]
        assert ("name" in chat) == bool(chat_of(fake, chat["chat_id"]).name)
    refused = client.get("/chats/")
    assert refused.status_code == 400 and refused.json()["command"] == "neo_error"
    assert client.get("/chats/", params={"character_ids": "nobody"}).json() == {"chats": []}


def test_turns_come_fifty_a_page_newest_first(client: httpx.Client,
                                             fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 120)
    got = pages(client, chat_id)
    assert [len(p["turns"]) for p in got] == [50, 50, 20]
    ids = [t["turn_key"]["turn_id"] for p in got for t in p["turns"]]
    assert ids == fake.message_ids(chat_id)[::-1]
    times = [t["create_time"] for p in got for t in p["turns"]]
    assert times == sorted(times, reverse=True)
    assert got[-1]["meta"] == {"next_token": None}
    turn = got[0]["turns"][0]
    assert {"turn_key", "author", "candidates", "primary_candidate_id", "is_pinned",
            "create_time", "state"} <= set(turn)
    assert turn["primary_candidate_id"] in {c["candidate_id"] for c in turn["candidates"]}


@pytest.mark.parametrize(("style", "meta"), [("null", {"next_token": None}), ("absent", {}),
                                             ("empty", {"next_token": ""})])
def test_last_page_token_style_is_configurable(client: httpx.Client, fake: CharacterAIFake,
                                               style: str, meta: dict[str, Any]) -> None:
    fake.last_token_style = style
    got = pages(client, chat_with(fake, 50))
    assert len(got) == 1 and got[0]["meta"] == meta


def test_extra_page_style_ends_a_full_history_with_an_empty_page(
    client: httpx.Client, fake: CharacterAIFake
) -> None:
    fake.last_token_style = "extra_page"
    got = pages(client, chat_with(fake, 100))
    assert [len(p["turns"]) for p in got] == [50, 50, 0]
    assert got[-1]["meta"] == {"next_token": None}
    with pytest.raises(ValueError, match="last_token_style"):
        CharacterAIFake(last_token_style="sometimes")


def test_a_removal_between_pages_skips_nothing(client: httpx.Client,
                                               fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 80)
    first = client.get(f"/turns/{chat_id}/").json()
    newest = [t["turn_key"]["turn_id"] for t in first["turns"][:5]]
    client.post(f"/turns/{chat_id}/remove", json={"turn_ids": newest})
    rest = client.get(f"/turns/{chat_id}/",
                      params={"next_token": first["meta"]["next_token"]}).json()
    assert [t["turn_key"]["turn_id"] for t in rest["turns"]] == fake.message_ids(chat_id)[
        :30][::-1]
    bad = client.get(f"/turns/{chat_id}/", params={"next_token": "not-a-token"})
    assert bad.status_code == 400 and bad.json()["comment"] == "Invalid next_token"


def test_pinned_only_filters_pinned_turns(client: httpx.Client, fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 12)
    chat = fake.find_chat(chat_id)
    assert chat is not None
    for turn in chat.turns:
        turn.pinned = turn in (chat.turns[2], chat.turns[7])
    got = client.get(f"/turns/{chat_id}/", params={"pinned_only": "true"}).json()["turns"]
    assert [t["turn_key"]["turn_id"] for t in got] == [chat.turns[7].id, chat.turns[2].id]
    assert all(t["is_pinned"] for t in got)


def test_remove_really_removes_and_ignores_unknown_ids(client: httpx.Client,
                                                       fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 10)
    gone, kept = fake.message_ids(chat_id)[:2]
    answer = client.post(f"/turns/{chat_id}/remove", json={"turn_ids": [gone, "unknown"]})
    assert answer.status_code == 200 and answer.json() == {}
    listed = [t["turn_key"]["turn_id"] for p in pages(client, chat_id) for t in p["turns"]]
    assert gone not in listed and kept in listed
    assert dict(fake.deletes) == {gone: 1}


def test_remove_validates_its_body_and_the_optional_limit(client: httpx.Client,
                                                          fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 10)
    path = f"/turns/{chat_id}/remove"
    bodies: list[Any] = [{"turn_ids": []}, {"turn_ids": "x"}, {"ids": ["x"]}, [1]]
    for body in bodies:
        refused = client.post(path, json=body)
        assert refused.status_code == 400 and refused.json()["command"] == "neo_error"
    fake.max_turn_ids = 3
    too_many = client.post(path, json={"turn_ids": fake.message_ids(chat_id)[:4]})
    assert too_many.status_code == 400 and "at most 3" in too_many.json()["comment"]
    assert len(fake.message_ids(chat_id)) == 10


def test_archive_once_then_already_archived(client: httpx.Client,
                                            fake: CharacterAIFake) -> None:
    chat_id = chat_with(fake, 4)
    assert client.patch(f"/chat/{chat_id}/archive", json={}).json() == {}
    again = client.patch(f"/chat/{chat_id}/archive", json={})
    assert again.status_code == 400
    assert again.json() == {"command": "neo_error", "comment": "Chat is already archived"}
    assert client.get(f"/chat/{chat_id}/").json()["chat"]["state"] == ARCHIVED
    assert fake.deletes[chat_id] == 1
    assert client.patch(f"/chat/{chat_id}/unarchive", json={}).status_code == 200
    assert chat_of(fake, chat_id).state == "STATE_ACTIVE"


def test_reset_after_delete_drops_the_connection_after_removing(
    client: httpx.Client, fake: CharacterAIFake
) -> None:
    chat_id = chat_with(fake, 4)
    victim = fake.message_ids(chat_id)[0]
    fake.reset_after_delete_next()
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(f"/turns/{chat_id}/remove", json={"turn_ids": [victim]})
    assert victim not in fake.message_ids(chat_id)
    assert fake.deletes[victim] == 1


def test_cloudflare_pages_and_rate_limits(client: httpx.Client, fake: CharacterAIFake) -> None:
    fake.cloudflare_block_next(1)
    fake.cloudflare_block_next(1, 403, plain=True, retry_after=60)
    fake.html_error_next(1, 502)
    blocked = client.get("/chats/recent/")
    assert blocked.status_code == 429 and "Retry-After" not in blocked.headers
    assert "text/html" in blocked.headers["Content-Type"] and "1015" in blocked.text
    plain = client.get("/chats/recent/")
    assert (plain.status_code, plain.text, plain.headers["Retry-After"]) == (
        403, "error code: 1015", "60")
    bad_gateway = client.get("/chats/recent/")
    assert bad_gateway.status_code == 502 and "cloudflare" in bad_gateway.headers["Server"]
    assert "<h1>502 Bad Gateway</h1>" in bad_gateway.text
    assert client.get("/chats/recent/").status_code == 200
    fake.rate_limit, fake.retry_after = 2, 7
    statuses = [client.get("/chats/recent/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get("/chats/recent/")
    assert limited.headers["Retry-After"] == "7" and limited.json()["command"] == "neo_error"


def test_fail_next_and_malformed_next(client: httpx.Client, fake: CharacterAIFake) -> None:
    fake.fail_next(1, 503)
    fake.malformed_next(1)
    assert client.get("/chat/user/").json() == {"command": "neo_error",
                                                "comment": "Injected failure"}
    with pytest.raises(ValueError):
        client.get("/chat/user/").json()
    assert client.get("/chat/user/").status_code == 200


def test_sized_fakes_keep_the_shared_contract() -> None:
    sized = CharacterAIFake.sized(conversations=4, messages=7, seed=2)
    assert len(sized.conversation_ids()) == 4
    assert all(len(sized.message_ids(c)) == 7 for c in sized.conversation_ids())
    assert CharacterAIFake.sized(conversations=0, messages=0).conversation_ids() == set()
    secrets, options = sized.client_config("http://127.0.0.1:9")
    assert secrets == {"token": DEMO_TOKEN}
    assert options == {"neo_url": "http://127.0.0.1:9", "plus_url": "http://127.0.0.1:9"}


def test_an_archived_empty_chat_no_longer_counts_as_a_conversation(
    client: httpx.Client, fake: CharacterAIFake
) -> None:
    chat_id = chat_with(fake, 3)
    client.post(f"/turns/{chat_id}/remove", json={"turn_ids": fake.message_ids(chat_id)})
    assert chat_id in fake.conversation_ids()  # empty but active
    client.patch(f"/chat/{chat_id}/archive", json={})
    assert chat_id not in fake.conversation_ids()
    assert fake.message_ids(chat_id) == []


def _snapshot(fake: CharacterAIFake) -> str:
    def get(path: str) -> Any:
        return json.loads(fake.handle("GET", path, {"Authorization": f"Token {DEMO_TOKEN}"},
                                      b"").body)

    data: dict[str, Any] = {"recent": get("/chats/recent/"), "user": get("/chat/user/")}
    for char_id in fake.character_ids():
        data[char_id] = get(f"/chats/?character_ids={char_id}&num_preview_turns=0")
        for chat_id in fake.chat_ids(char_id):
            data[chat_id] = get(f"/turns/{chat_id}/")
    return json.dumps(data, sort_keys=True)


def test_same_seed_gives_the_same_histories() -> None:
    assert _snapshot(CharacterAIFake(seed=3)) == _snapshot(CharacterAIFake(seed=3))
    assert _snapshot(CharacterAIFake(seed=3)) != _snapshot(CharacterAIFake(seed=4))


def test_dump_and_load_round_trip_gives_identical_answers() -> None:
    original = CharacterAIFake(seed=5, characters=2, chats=2)
    chat_id = original.chat_ids(original.character_ids()[0])[0]
    headers = {"Authorization": f"Token {DEMO_TOKEN}"}
    original.handle("POST", f"/turns/{chat_id}/remove", headers, json.dumps(
        {"turn_ids": original.message_ids(chat_id)[:2]}).encode())
    original.handle("PATCH", f"/chat/{chat_id}/archive", headers, b"{}")
    data = json.loads(json.dumps(original.dump()))
    copy = CharacterAIFake(seed=99, characters=1, chats=1)
    copy.load(data)
    assert _snapshot(copy) == _snapshot(original)
    assert copy.dump() == data


def test_a_persisted_removal_survives_a_reload(tmp_path: Path) -> None:
    state = tmp_path / "fake.json"
    fake = CharacterAIFake(seed=6, characters=1, chats=2)
    assert fake.persist(state) is False
    chat_id = fake.chat_ids(fake.character_ids()[0])[0]
    gone = fake.message_ids(chat_id)[0]
    fake.handle("POST", f"/turns/{chat_id}/remove", {"Authorization": f"Token {DEMO_TOKEN}"},
                json.dumps({"turn_ids": [gone]}).encode())
    again = CharacterAIFake(seed=7, characters=3, chats=1)
    assert again.persist(state) is True
    assert again.message_ids(chat_id) == fake.message_ids(chat_id)
    assert gone not in again.message_ids(chat_id)


def test_in_process_transport_answers_like_the_server(client: httpx.Client,
                                                      fake: CharacterAIFake) -> None:
    async def over_transport() -> Any:
        async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake",
                                     headers={"Authorization": f"Token {DEMO_TOKEN}"}) as c:
            return (await c.get("/chats/recent/")).json()

    assert asyncio.run(over_transport()) == client.get("/chats/recent/").json()
