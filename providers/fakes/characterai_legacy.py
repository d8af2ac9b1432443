"""A stateful fake of Character.AI's legacy chat v1 "histories" API.

Undocumented by Character.AI; the fake answers as the public clients of that API expect
(kramcat/CharacterAI, https://github.com/kramcat/CharacterAI; node_characterai 1.x,
https://github.com/realcoloride/node_characterai).

It serves the ``plus`` host paths the legacy client needs, with ``Authorization: Token <40
chars>`` (Django REST Framework token auth, as the answers suggest) and JSON bodies. Where
those clients are silent the fake picks one behaviour, written here so that tests and the
client agree on it:

- Auth: no ``Authorization`` header gives the anonymous user (``username: "ANONYMOUS"``) on
  ``/chat/user/`` and 401 ``{"detail": "Authentication credentials were not provided."}``
  elsewhere; a wrong or revoked token is 401 ``{"detail": "Invalid token."}`` with
  ``WWW-Authenticate: Token``. A token in ``anonymous_tokens`` is a guest session: ANONYMOUS
  on ``/chat/user/``, HTTP 200 ``{"force_login": true}`` everywhere else.
- ``GET /chat/characters/recent/``: the characters with legacy histories, newest interaction
  first, with ``participant__name`` (no ``name``) as in kramcat/CharacterAI's ``CharShort``.
- ``POST /chat/character/histories_v2/`` and ``.../histories/`` answer alike:
  ``{"histories": [...]}``, newest ``last_interaction`` first, at most ``number`` (default
  50) histories, each with its two newest messages as the ``msgs`` preview. An unknown
  character has no histories (200, empty list).
- ``GET /chat/history/msgs/user/?history_external_id=<id>[&page_num=<n>]``: 20 messages a
  page, counted back from the newest: no ``page_num`` (or 1) is the newest 20, page 2 the
  20 before them, and so on; each page is in chronological order (``id`` ascending).
  ``next_page`` is always ``page_num + 1``; ``has_more`` says whether older messages exist. A
  page beyond the end is empty with ``has_more: false``. Alternative replies
  (``is_alternative: true``) are listed and count towards the 20. An unknown history is 404
  ``{"detail": "Not found."}``; a bad ``page_num`` is 400.
- ``POST /chat/history/msgs/delete/`` ``{"history_id", "uuids_to_delete"}`` answers
  ``{"status": "OK"}``. The pre-2024 key ``ids_to_delete`` (or a missing/mistyped list) is
  400 ``{"status": "Error: uuids_to_delete required"}``; unknown uuids are ignored (not
  counted as deletes); an unknown history is 404. With ``soft_delete`` a deleted message
  stays listed with ``deleted: true``; otherwise it disappears. With ``max_delete`` a longer
  list is 400. Deleting never removes the history itself.
- ``gone=True`` (410) or ``gone=404`` makes every legacy path answer that status with a plain
  nginx-style HTML page, before auth, as a retired route would; ``/chat/user/`` still works.
- Errors are DRF-style ``{"detail": ...}``; a 429 is ``{"detail": "Request was throttled.
  Expected available in N seconds."}`` with ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import math
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs

from . import text
from .base import ConnectionDropped, FakeProvider, FakeResponse, json_response
from .characterai import DEMO_TOKEN as NEO_DEMO_TOKEN
from .characterai_legacy_data import (
    LegacyCharacter,
    LegacyHistory,
    LegacyMessage,
    character_json,
    dump_characters,
    gone_page,
    iso,
    load_characters,
    message_json,
    user_json,
)

# The fake's own 40-character demo token; it unlocks nothing real. By default the chat v2
# fake's demo token is accepted too, so one token connects both demo providers.
DEMO_TOKEN = "0123456789abcdef0123456789abcdef01234567"  # noqa: S105 - public demo value
EPOCH = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
PAGE_SIZE = 20
USER = "/chat/user/"
RECENT = "/chat/characters/recent/"
HISTORIES = ("/chat/character/histories_v2/", "/chat/character/histories/")
MESSAGES = "/chat/history/msgs/user/"
DELETE = "/chat/history/msgs/delete/"
LEGACY = (RECENT, *HISTORIES, MESSAGES, DELETE)
UUIDS_REQUIRED = "Error: uuids_to_delete required"


class CharacterAILegacyFake(FakeProvider):
    name: ClassVar[str] = "characterai_legacy"

    def __init__(self, *, seed: int = 0, characters: int = 3, histories: int = 4,
                 messages: tuple[int, int] = (3, 45), alternatives: float = 0.15,
                 tokens: Sequence[str] = (DEMO_TOKEN, NEO_DEMO_TOKEN),
                 anonymous_tokens: Sequence[str] = (),
                 now: datetime = EPOCH, gone: bool | int = False, soft_delete: bool = False,
                 max_delete: int | None = None, latency: float = 0.0,
                 rate_limit: float | None = None, retry_after: float | None = 1.0) -> None:
        super().__init__(latency=latency, rate_limit=rate_limit, retry_after=retry_after)
        self.seed = seed
        self.n_characters = characters
        self.n_histories = histories
        self.n_messages = messages
        self.alternatives = alternatives  # chance that a reply has unchosen alternatives
        self.tokens = frozenset(tokens)
        # What client_config hands out, fixed so a revoked token stays the one configured.
        self.client_token = DEMO_TOKEN if DEMO_TOKEN in tokens or not tokens else tokens[0]
        self.anonymous_tokens = frozenset(anonymous_tokens)
        self.now = now
        self.gone = gone
        self.soft_delete = soft_delete
        self.max_delete = max_delete
        self.characters: dict[str, LegacyCharacter] = {}
        self._query = ""
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Rebuild the seeded data and forget faults and counters (not the knobs)."""
        with self.lock:
            self.rng = random.Random(self.seed)
            first = self.rng.choice(text.FIRST)
            self.account = {"id": self.rng.randint(10**6, 10**8),
                            "username": f"{first.lower()}{self.rng.randint(10, 9999)}",
                            "name": first}
            self.characters = {}
            for _ in range(self.n_characters):
                char_id = self.add_character()
                for _ in range(self.n_histories):
                    self.add_history(char_id)
            self.clear_faults()

    @property
    def gone_status(self) -> int | None:
        if self.gone is True:
            return 410
        return int(self.gone) if self.gone else None

    def _external_id(self) -> str:
        # Character.AI's external ids are 43 url-safe base64 characters (32 random bytes).
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).rstrip(b"=").decode()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_character(self, name: str = "") -> str:
        with self.lock:
            char_id = self._external_id()
            name = name or text.person(self.rng)
            self.characters[char_id] = LegacyCharacter(
                char_id, name, text.description(self.rng),
                f"Hello! I'm {name.split()[0]}. {text.character_line(self.rng)}",
                f"internal_id:{self.rng.randint(10**5, 10**7)}:{self._uuid()}",
            )
            self.changed()
            return char_id

    def add_history(self, char_id: str, messages: int | None = None,
                    alternatives: float | None = None) -> str:
        """A new history of ``messages`` visible messages (greeting first), oldest id first;
        each reply has unchosen alternatives with chance ``alternatives``."""
        with self.lock:
            rng, char = self.rng, self.characters[char_id]
            chance = self.alternatives if alternatives is None else alternatives
            count = rng.randint(*self.n_messages) if messages is None else messages
            created = self.now - timedelta(days=rng.randint(1, 400), seconds=rng.randint(
                0, 86399), microseconds=rng.randint(0, 999999))
            moment = created
            history = LegacyHistory(self._external_id(), created, created)
            for index in range(count):
                human = index % 2 == 1
                if index == 0:
                    said = char.greeting
                elif human:
                    said = text.user_line(rng, char.name, index == 1)
                else:
                    said = text.character_line(rng)
                if not human and index and rng.random() < chance:
                    for _ in range(rng.randint(1, 2)):  # swiped away before the kept one
                        history.messages.append(self._message(moment, text.character_line(rng),
                                                              False, alternative=True))
                        moment += timedelta(seconds=rng.randint(2, 20))
                history.messages.append(self._message(moment, said, human))
                history.last_interaction = moment
                moment += timedelta(seconds=rng.randint(4, 120))
            char.histories[history.id] = history
            self.changed()
            return history.id

    def _message(self, at: datetime, said: str, human: bool, *,
                 alternative: bool = False) -> LegacyMessage:
        # Ids are large integers that grow with time (milliseconds since 1970 here).
        return LegacyMessage(int(at.timestamp() * 1000) + self.rng.randint(0, 999),
                             self._uuid(), said, human, alternative)

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {"account": dict(self.account),
                    "characters": dump_characters(self.characters)}

    def load(self, data: Mapping[str, Any]) -> None:
        characters = load_characters(data["characters"])
        account = {"id": int(data["account"]["id"]),
                   "username": str(data["account"]["username"]),
                   "name": str(data["account"]["name"])}
        with self.lock:
            self.account = account
            self.characters = characters

    # -- the contract of every fake ----------------------------------------------------

    @classmethod
    def sized(cls, *, conversations: int, messages: int, seed: int = 0) -> Self:
        # No alternatives, so a history of N messages is exactly ceil(N / 20) pages.
        return cls(seed=seed, characters=1, histories=conversations,
                   messages=(messages, messages), alternatives=0.0)

    def client_config(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"token": self.client_token}, {"plus_url": base_url}

    def conversation_ids(self) -> set[str]:
        with self.lock:
            return {h for c in self.characters.values() for h in c.histories}

    def message_ids(self, conversation_id: str) -> list[str]:
        """The uuids of the transcript: no alternatives, nothing deleted, oldest first."""
        history = self.history(conversation_id)
        if history is None:
            return []
        with self.lock:
            return [m.uuid for m in history.messages if not m.is_alternative and not m.deleted]

    def people_lines(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        for char in self.characters.values():
            for history in char.histories.values():
                for m in history.messages:
                    if m.is_human and not m.is_alternative and not m.deleted:
                        yield m.uuid, partial(setattr, m, "text")

    def revoke_credentials(self) -> None:
        with self.lock:
            self.tokens = frozenset()

    def character_ids(self) -> list[str]:
        with self.lock:
            return list(self.characters)

    def history(self, history_id: str) -> LegacyHistory | None:
        with self.lock:
            for char in self.characters.values():
                if history := char.histories.get(history_id):
                    return history
        return None

    def owner(self, history_id: str) -> LegacyCharacter | None:
        with self.lock:
            return next((c for c in self.characters.values() if history_id in c.histories),
                        None)

    # -- HTTP ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
               arrived: float | None = None) -> FakeResponse:
        # The base hands routes the path only; the query is kept here for the one route that
        # reads it. The lock is re-entrant and held for the whole request.
        with self.lock:
            self._query = path.partition("?")[2]
            return super().handle(method, path, headers, body, arrived)

    def error(self, status: int, text: str, headers: Mapping[str, str] | None = None
              ) -> FakeResponse:
        if status == 429:
            seconds = max(1, math.ceil(self.retry_after or 1))
            text = f"Request was throttled. Expected available in {seconds} seconds."
        return json_response(status, {"detail": text}, headers)

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes
              ) -> FakeResponse:
        if path != USER and path not in LEGACY:
            return self.error(404, "Not found.")
        if path in LEGACY and (status := self.gone_status):
            return gone_page(status)
        wanted = "GET" if path in (USER, RECENT, MESSAGES) else "POST"
        if method != wanted:
            return self.error(405, f'Method "{method}" not allowed.', {"Allow": wanted})
        header = headers.get("authorization", "")
        if not header:
            if path == USER:
                return json_response(200, user_json(self.account, anonymous=True))
            return self.error(401, "Authentication credentials were not provided.",
                              {"WWW-Authenticate": "Token"})
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "token" or not token.strip():
            return self.error(401, "Invalid token header. No credentials provided.",
                              {"WWW-Authenticate": "Token"})
        token = token.strip()
        if token in self.anonymous_tokens:
            if path == USER:
                return json_response(200, user_json(self.account, anonymous=True))
            return json_response(200, {"force_login": True})
        if token not in self.tokens:
            return self.error(401, "Invalid token.", {"WWW-Authenticate": "Token"})
        if path == USER:
            return json_response(200, user_json(self.account))
        if path == RECENT:
            return self._recent_characters()
        if path == MESSAGES:
            return self._messages(parse_qs(self._query))
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return json_response(400, {"status": "Error: request body must be a JSON object"})
        if path == DELETE:
            return self._delete(payload)
        return self._histories(payload)

    def _recent_characters(self) -> FakeResponse:
        rows = []
        for char in self.characters.values():
            last = max((h.last_interaction for h in char.histories.values()), default=None)
            rows.append((last or self.now, character_json(char, last)))
        rows.sort(key=lambda row: row[0], reverse=True)
        return json_response(200, {"characters": [row for _, row in rows]})

    def _histories(self, payload: dict[str, Any]) -> FakeResponse:
        char_id = payload.get("external_id")
        number = payload.get("number", 50)
        if not isinstance(char_id, str) or not char_id:
            return json_response(400, {"status": "Error: external_id required"})
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            return json_response(400, {"status": "Error: number must be a positive integer"})
        char = self.characters.get(char_id)
        if char is None:
            return json_response(200, {"histories": []})
        newest = sorted(char.histories.values(), key=lambda h: h.last_interaction, reverse=True)
        return json_response(200, {"histories": [
            {"external_id": h.id, "created": iso(h.created),
             "last_interaction": iso(h.last_interaction),
             "msgs": [message_json(self.account, char, m)
                      for m in h.messages if not m.deleted][-2:]}
            for h in newest[:number]]})

    def _messages(self, query: dict[str, list[str]]) -> FakeResponse:
        history_id = (query.get("history_external_id") or [""])[0]
        if not history_id:
            return json_response(400, {"status": "Error: history_external_id required"})
        raw_page = (query.get("page_num") or ["1"])[0]
        try:
            page = int(raw_page)
        except ValueError:
            page = 0
        if page < 1:
            return json_response(400, {"status": "Error: page_num must be a positive integer"})
        history, char = self.history(history_id), self.owner(history_id)
        if history is None or char is None:
            return self.error(404, "Not found.")
        listed = [m for m in history.messages if self.soft_delete or not m.deleted]
        end = max(0, len(listed) - PAGE_SIZE * (page - 1))
        start = max(0, end - PAGE_SIZE)
        return json_response(200, {
            "messages": [message_json(self.account, char, m) for m in listed[start:end]],
            "next_page": page + 1, "has_more": start > 0,
        })

    def _delete(self, payload: dict[str, Any]) -> FakeResponse:
        history_id = payload.get("history_id")
        uuids = payload.get("uuids_to_delete")
        if not isinstance(history_id, str) or not history_id:
            return json_response(400, {"status": "Error: history_id required"})
        if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
            return json_response(400, {"status": UUIDS_REQUIRED})
        if self.max_delete is not None and len(uuids) > self.max_delete:
            return json_response(400, {"status": f"Error: at most {self.max_delete} uuids"})
        history = self.history(history_id)
        if history is None:
            return self.error(404, "Not found.")
        wanted = set(uuids)
        kept, removed = [], False
        for message in history.messages:
            if message.uuid in wanted and not message.deleted:
                self.record_delete(message.uuid)
                removed = True
                if not self.soft_delete:
                    continue
                message.deleted = True
            kept.append(message)
        if removed:
            history.messages = kept
            self.changed()
        if self.take_reset():
            raise ConnectionDropped
        return json_response(200, {"status": "OK"})
