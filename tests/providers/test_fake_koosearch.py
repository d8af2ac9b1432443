"""The KooSearch + IAM fake itself, spoken to over a real loopback socket with plain httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from providers.fakes.base import FakeServer
from providers.fakes.koosearch import (
    DEMO_APPLICATION_ID,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_PROJECT_ID,
    DEMO_USER,
    KooSearchFake,
)

P = f"/v1/{DEMO_PROJECT_ID}/applications/{DEMO_APPLICATION_ID}/uni-search/chat-history"
TOKENS = "/v3/auth/tokens"


def login_body(password: str = DEMO_PASSWORD, project: str = DEMO_PROJECT_ID,
               user: str = DEMO_USER) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": DEMO_DOMAIN}}}},
        "scope": {"project": {"id": project}}}}


def make_fake() -> KooSearchFake:
    return KooSearchFake(seed=11, repos=2, chats=12)


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as plain:
        token = plain.post(TOKENS, json=login_body()).headers["X-Subject-Token"]
        plain.headers["X-Auth-Token"] = token
        yield plain


def delete(client: httpx.Client, body: Any) -> httpx.Response:
    return client.request("DELETE", P + "/batch", json=body)


def test_iam_issues_a_token_in_x_subject_token_with_201_and_expiry(server: FakeServer) -> None:
    response = httpx.post(server.url + TOKENS + "?nocatalog=true", json=login_body(), timeout=5)
    assert response.status_code == 201
    assert response.headers["X-Subject-Token"].startswith("MII")
    expires = datetime.fromisoformat(response.json()["token"]["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    assert response.json()["token"]["project"]["id"] == DEMO_PROJECT_ID


def test_iam_refuses_a_wrong_password_with_401_in_either_error_style(
    server: FakeServer, fake: KooSearchFake
) -> None:
    refused = httpx.post(server.url + TOKENS, json=login_body("nope"), timeout=5)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "The username or password is wrong."
    assert "X-Subject-Token" not in refused.headers
    fake.iam_error_style = "huawei"
    refused = httpx.post(server.url + TOKENS, json=login_body(user="someone"), timeout=5)
    assert refused.status_code == 401
    assert set(refused.json()) == {"error_code", "error_msg"}


def test_iam_answers_400_to_a_bad_body_or_another_project(server: FakeServer) -> None:
    assert httpx.post(server.url + TOKENS, content=b"{", timeout=5).status_code == 400
    other = httpx.post(server.url + TOKENS, json=login_body(project="other"), timeout=5)
    assert other.status_code == 400
    assert "scope" in other.json()["error"]["message"]


def test_koosearch_needs_a_live_token_of_its_project(
    server: FakeServer, fake: KooSearchFake, client: httpx.Client
) -> None:
    missing = httpx.get(server.url + P, timeout=5)
    assert missing.status_code == 401
    assert missing.json()["error_code"] == "APIGW.0301"
    assert client.get(P).status_code == 200
    other = client.get(P.replace(DEMO_PROJECT_ID, "aother-project"))
    assert (other.status_code, other.json()["error_code"]) == (403, "APIGW.0302")
    unknown_app = client.get(P.replace(DEMO_APPLICATION_ID, "no-such-app"))
    assert (unknown_app.status_code, unknown_app.json()["error_code"]) == (404, "KOS.00010005")
    assert client.get("/v1/nothing/here").json()["error_code"] == "APIGW.0101"
    fake.expire_tokens()
    expired = client.get(P)
    assert expired.status_code == 401 and "expired" in expired.json()["error_msg"]


def test_a_zero_token_ttl_gives_tokens_that_are_already_expired(
    server: FakeServer, fake: KooSearchFake
) -> None:
    fake.token_ttl = 0
    token = httpx.post(server.url + TOKENS, json=login_body(), timeout=5).headers[
        "X-Subject-Token"]
    assert httpx.get(server.url + P, headers={"X-Auth-Token": token},
                     timeout=5).status_code == 401


def test_list_pages_default_to_ten_newest_first_with_totals(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    first = client.get(P).json()
    assert (first["total"], first["size"], first["pages"], first["current"]) == (24, 10, 3, 1)
    assert [r["chat_id"] for r in first["records"]] == fake.chat_ids()[:10]
    last = client.get(P, params={"page_num": 3}).json()
    assert len(last["records"]) == 4 and last["current"] == 3
    beyond = client.get(P, params={"page_num": 4, "page_size": 10}).json()
    assert beyond["records"] == [] and beyond["total"] == 24
    record = first["records"][0]
    assert set(record) == {"chat_id", "knowledge_repo_id", "slave_repo_id", "chat_title",
                           "create_date_time", "project_id", "is_del"}
    assert isinstance(record["create_date_time"], str) and len(record["create_date_time"]) == 13
    stamps = [int(r["create_date_time"]) for r in first["records"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("params", [{"page_num": 0}, {"page_size": 65536}, {"page_size": "x"},
                                    {"chat_id": "bad id!"}, {"type": "HUMAN"}])
def test_list_refuses_out_of_range_parameters_with_kos_00010002(
    client: httpx.Client, params: dict[str, Any]
) -> None:
    response = client.get(P, params=params)
    assert response.status_code == 400
    assert response.json()["error_code"] == "KOS.00010002"


def test_list_filters_by_repository_and_chat(client: httpx.Client, fake: KooSearchFake) -> None:
    repo = fake.repo_ids()[1]
    by_repo = client.get(P, params={"repo_id": repo, "page_size": 100}).json()
    assert [r["chat_id"] for r in by_repo["records"]] == fake.chat_ids(repo)
    chat_id = fake.chat_ids()[5]
    assert [r["chat_id"] for r in client.get(P, params={"chat_id": chat_id}).json()[
        "records"]] == [chat_id]


def test_detail_has_question_models_oldest_first(client: httpx.Client, fake: KooSearchFake
                                                 ) -> None:
    chat_id = fake.chat_ids()[0]
    chat = client.get(f"{P}/{chat_id}").json()
    assert chat["chat_id"] == chat_id and chat["is_del"] == 0
    questions = chat["question_models"]
    assert [q["question"] for q in questions] == [q.question for q in fake.chats[chat_id].questions]
    assert all(q["chat_id"] == chat_id and q["question_id"] for q in questions)
    missing = client.get(f"{P}/no-such-chat")
    assert (missing.status_code, missing.json()["error_code"]) == (404, "KOS.00010005")
    wrong_repo = client.get(f"{P}/{chat_id}", params={"repo_id": "another-repo"})
    assert wrong_repo.status_code == 404


def test_batch_delete_removes_and_counts_in_camel_case_by_default(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    gone = fake.chat_ids()[:2]
    response = delete(client, {"chat_ids": [*gone, "unknown-id"]})
    assert response.status_code == 200
    assert response.json() == {"totalCount": 3, "deletedCount": 2}
    assert not set(gone) & fake.conversation_ids()
    assert client.get(f"{P}/{gone[0]}").status_code == 404
    assert dict(fake.deletes) == dict.fromkeys(gone, 1)
    fake.count_spelling = "snake"
    again = delete(client, {"chat_ids": gone})
    assert again.json() == {"total_count": 2, "deleted_count": 0}


def test_batch_delete_only_touches_chats_of_the_given_repositories(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    first, second = fake.repo_ids()
    mine, theirs = fake.chat_ids(first)[0], fake.chat_ids(second)[0]
    response = delete(client, {"chat_ids": [mine, theirs], "repo_ids": [first]})
    assert response.json()["deletedCount"] == 1
    assert theirs in fake.conversation_ids() and mine not in fake.conversation_ids()


@pytest.mark.parametrize(("body", "code"), [
    ({"chat_ids": ["ok-id", "not ok"]}, "KOS.00010002"),
    ({"chat_ids": ["x" * 65]}, "KOS.00010002"),
    ({"chat_ids": ["ok-id"], "repo_ids": ["r"] * 101}, "KOS.00010002"),
    ({"chat_ids": []}, "KOS.00010003"),
    ({}, "KOS.00010003"),
])
def test_batch_delete_refuses_bad_ids_and_deletes_nothing(
    client: httpx.Client, fake: KooSearchFake, body: dict[str, Any], code: str
) -> None:
    before = fake.conversation_ids()
    body = {k: [fake.chat_ids()[0] if i == "ok-id" else i for i in v] for k, v in body.items()}
    response = delete(client, body)
    assert (response.status_code, response.json()["error_code"]) == (400, code)
    assert fake.conversation_ids() == before


def test_batch_delete_refuses_broken_json_with_kos_00010001(client: httpx.Client) -> None:
    response = client.request("DELETE", P + "/batch", content=b"{",
                              headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error_code"]) == (400, "KOS.00010001")


def test_soft_delete_marks_is_del_and_keeps_listing_it(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    fake.soft_delete = True
    victim = fake.chat_ids()[0]
    assert delete(client, {"chat_ids": [victim]}).json()["deletedCount"] == 1
    listed = client.get(P, params={"chat_id": victim}).json()["records"]
    assert [r["is_del"] for r in listed] == [1]
    assert client.get(f"{P}/{victim}").json()["is_del"] == 1
    assert delete(client, {"chat_ids": [victim]}).json()["deletedCount"] == 0
    assert fake.deletes[victim] == 1


def test_partial_next_deletes_half_and_reports_the_smaller_count(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    ids = fake.chat_ids()[:5]
    fake.partial_next(1)
    assert delete(client, {"chat_ids": ids}).json() == {"totalCount": 5, "deletedCount": 2}
    assert fake.conversation_ids() & set(ids) == set(ids[2:])
    assert delete(client, {"chat_ids": ids}).json()["deletedCount"] == 3


def test_single_delete_answers_200_without_a_body(client: httpx.Client, fake: KooSearchFake
                                                  ) -> None:
    victim = fake.chat_ids()[3]
    response = client.delete(f"{P}/{victim}")
    assert response.status_code == 200 and response.content == b""
    assert victim not in fake.conversation_ids()
    assert client.delete(f"{P}/{victim}").status_code == 404


def test_reset_after_delete_drops_the_connection_after_deleting(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    victim = fake.chat_ids()[0]
    fake.reset_after_delete_next()
    with pytest.raises(httpx.RemoteProtocolError):
        delete(client, {"chat_ids": [victim]})
    assert victim not in fake.conversation_ids()
    assert fake.deletes[victim] == 1


def test_rate_limit_answers_429_with_retry_after_and_a_gateway_code(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    fake.rate_limit = 2
    fake.retry_after = 7
    assert [client.get(P).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get(P)
    assert refused.headers["Retry-After"] == "7"
    assert refused.json()["error_code"] == "APIGW.0308"


def test_error_array_wraps_every_error_body(client: httpx.Client, fake: KooSearchFake) -> None:
    fake.error_array = True
    fake.fail_next(1, 503)
    body = client.get(P).json()
    assert isinstance(body, list) and body[0]["error_code"] == "KOS.00000500"


def test_fault_knobs_answer_5xx_then_broken_json(client: httpx.Client, fake: KooSearchFake
                                                 ) -> None:
    fake.fail_next(1, 502)
    fake.malformed_next(1)
    assert client.get(P).status_code == 502
    broken = client.get(P)
    with pytest.raises(ValueError):
        broken.json()
    assert client.get(P).status_code == 200
    assert fake.count("GET", P) == 3


def test_revoked_credentials_refuse_the_password_and_every_token(
    server: FakeServer, client: httpx.Client, fake: KooSearchFake
) -> None:
    fake.revoke_credentials()
    assert client.get(P).status_code == 401
    secrets, _ = fake.client_config(server.url)
    assert secrets == {"password": DEMO_PASSWORD}
    assert httpx.post(server.url + TOKENS, json=login_body(secrets["password"]),
                      timeout=5).status_code == 401


def test_the_in_process_transport_answers_like_the_server(
    client: httpx.Client, fake: KooSearchFake
) -> None:
    async def over_transport() -> Any:
        async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake",
                                     headers={"X-Auth-Token": client.headers["X-Auth-Token"]}
                                     ) as c:
            return (await c.get(P, params={"page_num": 2})).json()

    assert asyncio.run(over_transport()) == client.get(P, params={"page_num": 2}).json()


def _snapshot(fake: KooSearchFake) -> str:
    return json.dumps(fake.dump(), sort_keys=True)


def test_same_seed_gives_the_same_histories() -> None:
    assert _snapshot(KooSearchFake(seed=3)) == _snapshot(KooSearchFake(seed=3))
    assert _snapshot(KooSearchFake(seed=3)) != _snapshot(KooSearchFake(seed=4))
    fake = KooSearchFake(seed=3)
    assert len(fake.repo_ids()) == 3 and len(fake.chat_ids()) == 24
    assert all(len(c.questions) >= 1 for c in fake.chats.values())


def test_dump_and_load_round_trip_keeps_deletes_and_soft_deletes(client: httpx.Client,
                                                                 fake: KooSearchFake) -> None:
    gone, soft = fake.chat_ids()[:2]
    delete(client, {"chat_ids": [gone]})
    fake.soft_delete = True
    delete(client, {"chat_ids": [soft]})
    data = json.loads(json.dumps(fake.dump()))
    copy = KooSearchFake(seed=99, repos=1, chats=1)
    copy.load(data)
    assert copy.dump() == data
    assert gone not in copy.conversation_ids() and copy.chats[soft].is_del == 1
    assert copy.message_ids(soft) == fake.message_ids(soft)


def test_the_shared_contract_sized_config_and_ids() -> None:
    empty = KooSearchFake.sized(conversations=0, messages=0)
    assert empty.conversation_ids() == set()
    fake = KooSearchFake.sized(conversations=3, messages=4, seed=2)
    assert len(fake.conversation_ids()) == 3
    chat_id = fake.chat_ids()[0]
    ids = fake.message_ids(chat_id)
    assert len(ids) == 4 and ids[0].endswith(":q") and ids[1].endswith(":a")
    secrets, options = fake.client_config("http://127.0.0.1:1")
    assert secrets == {"password": DEMO_PASSWORD}
    assert options["base_url"] == options["iam_url"] == "http://127.0.0.1:1"
    assert (options["iam_user"], options["domain_name"]) == (DEMO_USER, DEMO_DOMAIN)
