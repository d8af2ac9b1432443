"""The Convai fake itself, spoken to over a real loopback socket with plain httpx."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.fakes import ConvaiFake, FakeServer
from providers.fakes.convai import DB_FAILED, DEMO_KEY

LIST = "/character/list"
SESSIONS = "/character/chatHistory/list"
DETAILS = "/character/chatHistory/details"
DELETE = "/character/chatHistory/delete"
ROOT = Path(__file__).resolve().parents[2]


def make_fake() -> ConvaiFake:
    return ConvaiFake(seed=11, characters=2, sessions=4)


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"CONVAI-API-KEY": DEMO_KEY},
                      timeout=5) as c:
        yield c


def post(client: httpx.Client, path: str, body: Any = None) -> httpx.Response:
    return client.post(path, json=body)


def test_missing_key_answers_400_api_key_not_found(server: FakeServer) -> None:
    response = httpx.post(server.url + LIST, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"ERROR": "API Key not found"}


def test_wrong_key_answers_401_invalid_api_key(server: FakeServer) -> None:
    response = httpx.post(server.url + LIST, headers={"CONVAI-API-KEY": "nope"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"ERROR": "Invalid API key provided."}


def test_only_post_on_known_paths(client: httpx.Client) -> None:
    assert client.get(LIST).status_code == 405
    assert post(client, "/character/unknown").status_code == 404


def test_character_list_is_an_object_with_documented_fields(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    characters = post(client, LIST).json()["characters"]
    assert [c["character_id"] for c in characters] == fake.character_ids()
    first = characters[0]
    for key in ("character_name", "user_id", "description", "last_interacted_with",
                "timestamp", "memory_settings"):
        assert key in first
    assert "T" in first["last_interacted_with"] and "+" not in first["last_interacted_with"]


def test_session_list_is_newest_first_with_day_first_dates(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[0]
    sessions = post(client, SESSIONS, {"charID": char_id, "limit": "-1"}).json()
    assert [s["sessionID"] for s in sessions] == fake.session_ids(char_id)
    stamps = [(s["date"][6:], s["date"][3:5], s["date"][:2], s["time"]) for s in sessions]
    assert stamps == sorted(stamps, reverse=True)
    assert set(sessions[0]) == {"sessionID", "date", "time", "is_added_to_memory"}


def test_limit_must_be_a_string(client: httpx.Client, fake: ConvaiFake) -> None:
    char_id = fake.character_ids()[0]
    refused = post(client, SESSIONS, {"charID": char_id, "limit": -1})
    assert refused.status_code == 400
    assert "string" in refused.json()["ERROR"]
    two = post(client, SESSIONS, {"charID": char_id, "limit": "2"}).json()
    assert [s["sessionID"] for s in two] == fake.session_ids(char_id)[:2]


def test_unknown_character_answers_400_database_error(client: httpx.Client) -> None:
    response = post(client, SESSIONS, {"charID": "no-such-character", "limit": "-1"})
    assert response.status_code == 400
    assert response.json() == {"ERROR": DB_FAILED}


def test_details_are_multi_turn_transcripts(client: httpx.Client, fake: ConvaiFake) -> None:
    char_id = fake.character_ids()[0]
    session_id = fake.session_ids(char_id)[0]
    entries = post(client, DETAILS, {"charID": char_id, "sessionID": session_id}).json()
    assert len(entries) >= 2
    assert [line["speaker"] for line in entries[0]["interaction"]] == ["User", "Character"]
    assert all(line["message"].strip() for e in entries for line in e["interaction"])
    assert entries[0]["timestamp"] < entries[-1]["timestamp"]


def _snapshot(fake: ConvaiFake) -> str:
    def call(path: str, body: Any = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        return json.loads(fake.handle("POST", path, {"CONVAI-API-KEY": DEMO_KEY}, raw).body)

    data = {"characters": call(LIST)}
    for char_id in fake.character_ids():
        for session_id in fake.session_ids(char_id):
            data[session_id] = call(DETAILS, {"charID": char_id, "sessionID": session_id})
    return json.dumps(data, sort_keys=True)


def test_same_seed_gives_the_same_histories() -> None:
    assert _snapshot(ConvaiFake(seed=3)) == _snapshot(ConvaiFake(seed=3))
    assert _snapshot(ConvaiFake(seed=3)) != _snapshot(ConvaiFake(seed=4))
    assert len(ConvaiFake(seed=3, characters=4, sessions=2).character_ids()) == 4


def test_delete_really_removes_and_ignores_unknown_ids(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[0]
    gone, kept = fake.session_ids(char_id)[:2]
    response = post(client, DELETE, {"charID": char_id, "sessionIDs": [gone, "unknown"]})
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESSFULLY DELETED"}
    listed = [s["sessionID"] for s in post(client, SESSIONS, {"charID": char_id}).json()]
    assert gone not in listed and kept in listed
    assert post(client, DETAILS, {"charID": char_id, "sessionID": gone}).json() == []
    assert dict(fake.deletes) == {gone: 1}


def test_plan_gated_delete_refuses_and_keeps_sessions(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    fake.plan_gated_delete = True
    char_id = fake.character_ids()[0]
    before = fake.session_ids(char_id)
    response = post(client, DELETE, {"charID": char_id, "sessionIDs": before[:1]})
    assert response.status_code == 403
    assert "select customers" in response.json()["ERROR"]
    assert fake.session_ids(char_id) == before


def test_reset_after_delete_drops_the_connection_after_deleting(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    char_id = fake.character_ids()[0]
    victim = fake.session_ids(char_id)[0]
    fake.reset_after_delete_next()
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, DELETE, {"charID": char_id, "sessionIDs": [victim]})
    assert victim not in fake.session_ids(char_id)
    assert fake.deletes[victim] == 1


def test_rate_limit_answers_429_with_retry_after(client: httpx.Client, fake: ConvaiFake) -> None:
    fake.rate_limit = 2
    fake.retry_after = 7
    statuses = [post(client, LIST).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = post(client, LIST)
    assert refused.headers["Retry-After"] == "7"
    assert "ERROR" in refused.json()


def test_the_rate_limit_counts_arrivals_however_late_they_are_answered(fake: ConvaiFake) -> None:
    # As a provider's edge does: what counts is when a request arrived, not when the fake
    # got round to it (a request can wait behind a big answer being built).
    fake.rate_limit = 2

    def statuses(*arrivals: float) -> list[int]:
        return [fake.handle("POST", LIST, {"CONVAI-API-KEY": DEMO_KEY}, b"", arrived=at).status
                for at in arrivals]

    # 100.9 is handled last, but it arrived in the second that already holds 100.0 and 100.5.
    assert statuses(100.0, 100.5, 101.2, 100.9) == [200, 200, 200, 429]
    fake.reset()
    # Here it is the one second starting at 200.5 that would hold three.
    assert statuses(200.5, 200.9, 200.7) == [200, 200, 429]
    fake.reset()
    assert statuses(300.0, 300.6, 301.1, 301.7) == [200] * 4  # two a second: allowed


def test_the_fake_counts_arrivals_and_429s_as_a_provider_would(fake: ConvaiFake) -> None:
    fake.rate_limit = 2
    statuses = [fake.handle("POST", LIST, {"CONVAI-API-KEY": DEMO_KEY}, b"{}", arrived=t).status
                for t in (10.0, 10.2, 10.4, 11.3, 13.0)]
    assert statuses == [200, 200, 429, 200, 200]
    assert fake.answered_429 == 1
    assert fake.busiest(1.0) == 3  # the refused one arrived too
    assert fake.busiest(3.0) == 4 and fake.busiest(3.5) == 5  # windows are [t, t + s)


def test_an_outage_answers_503_to_everything_until_it_is_over(client: httpx.Client,
                                                              fake: ConvaiFake) -> None:
    fake.unavailable_for(0.3)
    assert [post(client, LIST).status_code for _ in range(3)] == [503] * 3
    time.sleep(0.3)
    assert post(client, LIST).status_code == 200


def test_fault_knobs_answer_5xx_then_broken_json(client: httpx.Client, fake: ConvaiFake) -> None:
    fake.fail_next(1, 503)
    fake.malformed_next(1)
    assert post(client, LIST).status_code == 503
    broken = post(client, LIST)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert post(client, LIST).status_code == 200
    assert fake.count("POST", LIST) == 3


def test_in_process_transport_answers_like_the_server(
    client: httpx.Client, fake: ConvaiFake
) -> None:
    async def over_transport() -> Any:
        async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake",
                                     headers={"CONVAI-API-KEY": DEMO_KEY}) as c:
            return (await c.post(LIST)).json()

    assert asyncio.run(over_transport()) == post(client, LIST).json()


def test_command_line_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.fakes", "convai", "--port", "0", "--seed", "2",
         "--characters", "1", "--sessions", "2", "--latency", "0.001"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" at ")[1].strip()
        assert DEMO_KEY in process.stdout.readline()
        response = httpx.post(url + LIST, headers={"CONVAI-API-KEY": DEMO_KEY}, timeout=5)
        assert len(response.json()["characters"]) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dump_and_load_round_trip_gives_identical_answers() -> None:
    original = ConvaiFake(seed=5, characters=2, sessions=3)
    char_id = original.character_ids()[0]
    original.handle("POST", DELETE, {"CONVAI-API-KEY": DEMO_KEY},
                    json.dumps({"charID": char_id,
                                "sessionIDs": original.session_ids(char_id)[:1]}).encode())
    data = json.loads(json.dumps(original.dump()))  # survives JSON as it is
    copy = ConvaiFake(seed=99, characters=1, sessions=1)
    copy.load(data)
    assert _snapshot(copy) == _snapshot(original)
    assert copy.dump() == data


def test_a_persisted_delete_writes_the_file_and_survives_a_reload(tmp_path: Path) -> None:
    state = tmp_path / "fake.json"
    fake = ConvaiFake(seed=6, characters=1, sessions=3)
    assert fake.persist(state) is False
    char_id = fake.character_ids()[0]
    gone = fake.session_ids(char_id)[0]
    written = state.stat().st_mtime_ns
    fake.handle("POST", DELETE, {"CONVAI-API-KEY": DEMO_KEY},
                json.dumps({"charID": char_id, "sessionIDs": ["unknown"]}).encode())
    assert state.stat().st_mtime_ns == written  # nothing removed, nothing saved
    fake.handle("POST", DELETE, {"CONVAI-API-KEY": DEMO_KEY},
                json.dumps({"charID": char_id, "sessionIDs": [gone]}).encode())
    assert [p.name for p in tmp_path.iterdir()] == ["fake.json"]  # no temporary file left
    again = ConvaiFake(seed=7, characters=2, sessions=5)
    assert again.persist(state) is True
    assert again.character_ids() == [char_id]
    assert gone not in again.session_ids(char_id)
    assert again.session_ids(char_id) == fake.session_ids(char_id)


def test_command_line_state_keeps_deletes_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "var" / "fake-convai.json"

    def start() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "providers.fakes", "convai", "--port", "0", "--seed", "2",
             "--characters", "1", "--sessions", "3", "--state", str(state)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        return process, process.stdout.readline().split(" at ")[1].strip()

    def stop(process: subprocess.Popen[str]) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0

    def sessions(url: str, char_id: str) -> list[str]:
        answer = httpx.post(url + SESSIONS, json={"charID": char_id},
                            headers={"CONVAI-API-KEY": DEMO_KEY}, timeout=5)
        # Without --epoch the seeded histories are recent: within the last 180 days.
        for s in answer.json():
            age = date.today() - datetime.strptime(s["date"], "%d-%m-%Y").date()
            assert timedelta(days=-1) <= age <= timedelta(days=181)
        return [s["sessionID"] for s in answer.json()]

    process, url = start()
    try:
        characters = httpx.post(url + LIST, headers={"CONVAI-API-KEY": DEMO_KEY}, timeout=5)
        char_id = characters.json()["characters"][0]["character_id"]
        before = sessions(url, char_id)
        assert state.exists()
        deleted = httpx.post(url + DELETE, json={"charID": char_id, "sessionIDs": before[:1]},
                             headers={"CONVAI-API-KEY": DEMO_KEY}, timeout=5)
        assert deleted.status_code == 200
        stop(process)
        process, url = start()
        assert sessions(url, char_id) == before[1:]
        stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

