"""A stateful fake of Convai's character and chat-history API, as documented under
https://docs.convai.com/api-docs/api-reference/core-api-reference/ (``chat-history-api``,
``character-list-api``; the delete's hidden page is in the documentation's sources,
https://github.com/Conv-AI/Convai-Documentation).

Same paths, ``POST`` only, ``CONVAI-API-KEY`` header, JSON bodies and the documented
answers. Where the documentation is silent the fake picks one behaviour, written here so
tests and the client agree on it:

- Missing key: 400 ``{"ERROR": "API Key not found"}``; wrong key: 401
  ``{"ERROR": "Invalid API key provided."}``; another method: 405; another path: 404.
- Unknown ``charID`` on any chat-history call: 400 ``{"ERROR": "INTERNAL SERVER ERROR, one
  or more database calls failed!"}`` (the documented answer of ``/character/get``).
- A body that is not a JSON object, or a missing/mistyped field: 400 with an ``ERROR``.
- ``limit`` must be a string: ``"-1"`` (or any negative) returns every session, ``"N"``
  the N newest; absent means ``"-1"``; a number or other type is a 400.
- ``chatHistory/list`` is newest first; ``details`` of an unknown session is ``[]``.
- ``delete`` ignores session ids it does not know (they are not counted as deletes) and
  answers ``{"status": "SUCCESSFULLY DELETED"}``. With ``plan_gated_delete`` it answers
  403 ``{"ERROR": "Chat history delete is available only to select customers."}``.
- A 429 (``rate_limit`` or ``fail_next(status=429)``) is ``{"ERROR": "Too many
  requests"}`` with ``Retry-After`` in seconds.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Self

from . import text
from .base import ConnectionDropped, FakeProvider, FakeResponse, json_response

DEMO_KEY = "demo-convai-key-0000000000000000"
# Histories are dated back from a fixed moment so a seed gives identical data every day.
EPOCH = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
DB_FAILED = "INTERNAL SERVER ERROR, one or more database calls failed!"
PLAN_REFUSED = "Chat history delete is available only to select customers."
PATHS = ("/character/list", "/character/chatHistory/list", "/character/chatHistory/details",
         "/character/chatHistory/delete")


@dataclass
class Interaction:
    at: datetime
    lines: list[tuple[str, str]]  # (speaker, message)
    is_trigger_input: bool = False


@dataclass
class Session:
    id: str
    started: datetime
    in_memory: bool
    interactions: list[Interaction]


@dataclass
class FakeCharacter:
    id: str
    name: str
    description: str
    created: datetime
    sessions: dict[str, Session] = field(default_factory=dict)

    def newest_first(self) -> list[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.started, reverse=True)


def _set_line(lines: list[tuple[str, str]], k: int, value: str) -> None:
    lines[k] = (lines[k][0], value)


class ConvaiFake(FakeProvider):
    name: ClassVar[str] = "convai"

    def __init__(self, *, seed: int = 0, characters: int = 3, sessions: int = 12,
                 turns: tuple[int, int] = (2, 6), api_keys: Sequence[str] = (DEMO_KEY,),
                 user_id: str = "", now: datetime = EPOCH, latency: float = 0.0,
                 rate_limit: float | None = None, retry_after: float | None = 1.0,
                 plan_gated_delete: bool = False) -> None:
        super().__init__(latency=latency, rate_limit=rate_limit, retry_after=retry_after,
                         plan_gated_delete=plan_gated_delete)
        self.seed = seed
        self.n_characters = characters
        self.n_sessions = sessions
        self.turns = turns
        self.api_keys = frozenset(api_keys)
        self.client_key = sorted(self.api_keys)[0] if self.api_keys else DEMO_KEY
        self.now = now
        self.user_id = user_id
        self.characters: dict[str, FakeCharacter] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Rebuild the seeded data and forget faults and counters."""
        with self.lock:
            self.rng = random.Random(self.seed)
            self.owner = self.user_id or self._hex(32)
            self.characters = {}
            for _ in range(self.n_characters):
                char_id = self.add_character()
                self.add_sessions(char_id, self.n_sessions)
            self.clear_faults()

    def _hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def add_character(self, name: str = "") -> str:
        with self.lock:
            char_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            created = self.now - timedelta(days=self.rng.randint(200, 700),
                                           seconds=self.rng.randint(0, 86399))
            self.characters[char_id] = FakeCharacter(
                char_id, name or text.person(self.rng), text.description(self.rng), created
            )
            return char_id

    def add_sessions(self, char_id: str, count: int) -> list[str]:
        with self.lock:
            char = self.characters[char_id]
            added = []
            for _ in range(count):
                session = self._session(char)
                char.sessions[session.id] = session
                added.append(session.id)
            return added

    def _session(self, char: FakeCharacter) -> Session:
        rng = self.rng
        started = self.now - timedelta(days=rng.randint(0, 180), seconds=rng.randint(0, 86399),
                                       microseconds=rng.randint(0, 999999))
        moment = started
        interactions = []
        for turn in range(rng.randint(*self.turns)):
            trigger = turn == 0 and rng.random() < 0.1
            said = "[the player walks in]" if trigger else text.user_line(rng, char.name,
                                                                          turn == 0)
            interactions.append(Interaction(
                moment, [("User", said), ("Character", text.character_line(rng))], trigger
            ))
            moment += timedelta(seconds=rng.randint(4, 90), microseconds=rng.randint(0, 999999))
        return Session(self._hex(32), started, rng.random() < 0.25, interactions)

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {"owner": self.owner, "characters": [
                {"id": c.id, "name": c.name, "description": c.description,
                 "created": c.created.isoformat(), "sessions": [
                     {"id": s.id, "started": s.started.isoformat(), "in_memory": s.in_memory,
                      "interactions": [
                          {"at": i.at.isoformat(), "lines": [list(line) for line in i.lines],
                           "is_trigger_input": i.is_trigger_input}
                          for i in s.interactions]}
                     for s in c.sessions.values()]}
                for c in self.characters.values()]}

    def load(self, data: Mapping[str, Any]) -> None:
        characters = {}
        for c in data["characters"]:
            char = FakeCharacter(str(c["id"]), str(c["name"]), str(c["description"]),
                                 datetime.fromisoformat(c["created"]))
            for s in c["sessions"]:
                char.sessions[str(s["id"])] = Session(
                    str(s["id"]), datetime.fromisoformat(s["started"]), bool(s["in_memory"]),
                    [Interaction(datetime.fromisoformat(i["at"]),
                                 [(str(who), str(what)) for who, what in i["lines"]],
                                 bool(i["is_trigger_input"]))
                     for i in s["interactions"]])
            characters[char.id] = char
        with self.lock:
            self.owner = str(data["owner"])
            self.characters = characters

    # -- the contract of every fake ----------------------------------------------------

    @classmethod
    def sized(cls, *, conversations: int, messages: int, seed: int = 0) -> Self:
        # Every interaction is one User line and one Character line.
        per = max(1, -(-messages // 2)) if messages else 0
        return cls(seed=seed, characters=1, sessions=conversations, turns=(per, per))

    def client_config(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"api_key": self.client_key}, {"base_url": base_url}

    def conversation_ids(self) -> set[str]:
        with self.lock:
            return {s for c in self.characters.values() for s in c.sessions}

    def message_ids(self, conversation_id: str) -> list[str]:
        with self.lock:
            for char in self.characters.values():
                if session := char.sessions.get(conversation_id):
                    n = sum(len(i.lines) for i in session.interactions)
                    return [f"{conversation_id}:{k}" for k in range(n)]
        return []

    def people_lines(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        for char in self.characters.values():
            for session in char.sessions.values():
                index = 0
                for interaction in session.interactions:
                    for k, (speaker, _) in enumerate(interaction.lines):
                        if speaker == "User":
                            yield f"{session.id}:{index + k}", partial(
                                _set_line, interaction.lines, k)
                    index += len(interaction.lines)

    def revoke_credentials(self) -> None:
        with self.lock:
            self.api_keys = frozenset()

    def character_ids(self) -> list[str]:
        with self.lock:
            return list(self.characters)

    def session_ids(self, char_id: str) -> list[str]:
        """Newest first, as the list endpoint returns them."""
        with self.lock:
            return [s.id for s in self.characters[char_id].newest_first()]

    # -- HTTP ----------------------------------------------------------------------------

    def error(self, status: int, text: str, headers: Mapping[str, str] | None = None
              ) -> FakeResponse:
        return json_response(status, {"ERROR": text}, headers)

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes
              ) -> FakeResponse:
        if path not in PATHS:
            return self.error(404, "Not Found")
        if method != "POST":
            return self.error(405, "Method Not Allowed", {"Allow": "POST"})
        key = headers.get("convai-api-key", "")
        if not key:
            return self.error(400, "API Key not found")
        if key not in self.api_keys:
            return self.error(401, "Invalid API key provided.")
        if path == "/character/list":
            return json_response(200, {"characters": [self._character_json(c)
                                                      for c in self.characters.values()]})
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return self.error(400, "Request body is not valid JSON.")
        if not isinstance(payload, dict):
            return self.error(400, "Request body must be a JSON object.")
        char_id = payload.get("charID")
        if not isinstance(char_id, str) or not char_id:
            return self.error(400, "charID is required.")
        if path.endswith("/delete") and self.plan_gated_delete:
            return self.error(403, PLAN_REFUSED)
        char = self.characters.get(char_id)
        if char is None:
            return self.error(400, DB_FAILED)
        if path.endswith("/list"):
            return self._list(char, payload)
        if path.endswith("/details"):
            return self._details(char, payload)
        return self._delete(char, payload)

    def _list(self, char: FakeCharacter, payload: dict[str, Any]) -> FakeResponse:
        limit = payload.get("limit", "-1")
        if not isinstance(limit, str):
            return self.error(400, 'limit must be a string, e.g. "-1".')
        try:
            count = int(limit)
        except ValueError:
            return self.error(400, 'limit must be a number in a string, e.g. "-1".')
        sessions = char.newest_first()
        if count >= 0:
            sessions = sessions[:count]
        return json_response(200, [
            {"sessionID": s.id, "date": s.started.strftime("%d-%m-%Y"),
             "time": s.started.strftime("%H:%M:%S"), "is_added_to_memory": s.in_memory}
            for s in sessions
        ])

    def _details(self, char: FakeCharacter, payload: dict[str, Any]) -> FakeResponse:
        session_id = payload.get("sessionID")
        if not isinstance(session_id, str) or not session_id:
            return self.error(400, "sessionID is required.")
        session = char.sessions.get(session_id)
        if session is None:
            return json_response(200, [])
        return json_response(200, [
            {"timestamp": i.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
             "interaction": [{"speaker": s, "message": self.text(m)} for s, m in i.lines],
             "is_trigger_input": i.is_trigger_input}
            for i in session.interactions
        ])

    def _delete(self, char: FakeCharacter, payload: dict[str, Any]) -> FakeResponse:
        ids = payload.get("sessionIDs")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return self.error(400, "sessionIDs must be a list of session ids.")
        removed = False
        for session_id in ids:
            if char.sessions.pop(session_id, None) is not None:
                self.record_delete(session_id)
                removed = True
        if removed:
            self.changed()
        if self.take_reset():
            raise ConnectionDropped
        return json_response(200, {"status": "SUCCESSFULLY DELETED"})

    def _character_json(self, char: FakeCharacter) -> dict[str, Any]:
        last = max((i.at for s in char.sessions.values() for i in s.interactions), default=None)
        return {
            "character_name": char.name,
            "collection_name": None,
            "user_id": self.owner,
            "character_id": char.id,
            "model_type": "Default",
            "state_names": [],
            "state_links": [],
            "listing": False,
            "voice_type": "MALE" if len(char.name) % 2 else "FEMALE",
            "voice_pitch": None,
            "timestamp": char.created.strftime("%Y-%m-%dT%H:%M:%S"),
            "character_actions": [],
            "character_emotions": [],
            "language_code": "en-US",
            "language_codes": ["en-US"],
            "memory_settings": {"enabled": any(s.in_memory for s in char.sessions.values())},
            "last_interacted_with": last.strftime("%Y-%m-%dT%H:%M:%S") if last else None,
            "description": char.description,
            "speaking_style": "",
            "is_narrative_driven": False,
        }
