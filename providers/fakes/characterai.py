"""A stateful fake of Character.AI's chat v2 REST API and account check.

Character.AI documents none of it; the fake answers as the public clients expect
(PyCharacterAI, https://github.com/Xtr4F/PyCharacterAI; kramcat/CharacterAI,
https://github.com/kramcat/CharacterAI; node_characterai,
https://github.com/realcoloride/node_characterai; CAINode,
https://github.com/KevinAdhaikal/CAINode).

One server answers the paths of both hosts (neo: chats, turns; plus: ``/chat/user/``), so a
client's ``neo_url`` and ``plus_url`` may both point at it. ``Authorization: Token <token>``
on every request. Where those clients are silent the fake picks one behaviour:

- No Authorization header: ``/chat/user/`` answers 200 with the ``ANONYMOUS`` user (plus
  serves anonymous sessions); every other path 403 ``{"detail": "Authentication credentials
  were not provided."}``. A wrong or revoked token: 401 ``{"detail": "Invalid token."}``.
- Other errors are ``{"command": "neo_error", "comment": ...}``: 404 for an unknown path or
  chat ("Chat not found"), 405 for another method, 400 for a bad body or ``next_token``.
- ``/chats/recent/``: one entry per character, its newest active chat, most recent first; a
  character whose chats are all archived is absent. ``/chats/?character_ids=`` returns all
  chats of those characters, archived ones included, newest first, each with
  ``preview_turns`` (``num_preview_turns``, default 2, newest first).
- ``/turns/{chat_id}/``: ``page_size`` (50) turns a page, newest first, ``meta.next_token``
  an opaque cursor (the oldest turn of the page, so removals between pages skip nothing).
  On the last page ``last_token_style`` decides: "null" (default) ``"next_token": null``,
  "absent" ``"meta": {}``, "empty" ``""``, or "extra_page": a full page always carries a
  token, so a history of exactly 50 ends with an empty page. ``pinned_only=true`` filters.
- ``POST /turns/{chat_id}/remove`` ``{"turn_ids": [...]}``: removes the known ids, ignores
  unknown ones, answers 200 ``{}``. An empty or mistyped list is a 400; with
  ``max_turn_ids`` set, a longer list is a 400 and nothing is removed.
- ``PATCH /chat/{chat_id}/archive``: 200 ``{}``; an already archived chat is 400 neo_error
  "Chat is already archived". ``unarchive`` is the reverse. A successful archive is
  counted in ``deletes`` under the chat id (it ends a conversation's erasure).
- Both delete routes (remove, archive) honour ``reset_after_delete_next`` after the change.
- Extra faults: ``cloudflare_block_next`` answers Cloudflare's "error 1015" rate-limit page
  (HTML, or the bare ``error code: 1015`` text), 429 or 403, no Retry-After unless given;
  ``html_error_next`` a Cloudflare HTML 502/503 page. The route does not run.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from . import text
from .base import ConnectionDropped, FakeProvider, FakeResponse, json_response
from .characterai_data import (
    ARCHIVED,
    CLOUDFLARE_5XX,
    CLOUDFLARE_1015,
    Chat,
    FakeCharacter,
    Generator,
    chat_json,
    dump_data,
    load_data,
    turn_json,
    user_json,
)

# The fake's own demo token (40 characters, like a real one); it unlocks nothing real.
DEMO_TOKEN = "demo" + "characterai" + "0" * 25  # noqa: S105
EPOCH = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_CREDENTIALS = "Authentication credentials were not provided."
INVALID_TOKEN = "Invalid token."  # noqa: S105 - Django REST framework's text, not a secret
LAST_TOKEN_STYLES = ("null", "absent", "empty", "extra_page")


class CharacterAIFake(FakeProvider):
    name: ClassVar[str] = "characterai"

    def __init__(self, *, seed: int = 0, characters: int = 3, chats: int = 3,
                 turns: tuple[int, int] = (4, 120), archived: int = 1, pinned: float = 0.08,
                 tokens: tuple[str, ...] = (DEMO_TOKEN,), username: str = "",
                 now: datetime = EPOCH, last_token_style: str = "null",  # noqa: S107
                 page_size: int = 50, max_turn_ids: int | None = None, latency: float = 0.0,
                 rate_limit: float | None = None, retry_after: float | None = 1.0) -> None:
        super().__init__(latency=latency, rate_limit=rate_limit, retry_after=retry_after)
        if last_token_style not in LAST_TOKEN_STYLES:
            raise ValueError(f"last_token_style must be one of {LAST_TOKEN_STYLES}")
        self.seed = seed
        self.n_characters = characters
        self.n_chats = chats
        self.turns = turns
        self.n_archived = archived
        self.pinned = pinned
        self.tokens = frozenset(tokens)
        self.client_token = sorted(self.tokens)[0] if self.tokens else DEMO_TOKEN
        self.username = username
        self.now = now
        self.last_token_style = last_token_style
        self.page_size = page_size
        self.max_turn_ids = max_turn_ids
        self._query = threading.local()
        self._pages: list[tuple[int, str, bool, float | None]] = []
        self.characters: dict[str, FakeCharacter] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Rebuild the seeded data and forget faults and counters."""
        with self.lock:
            self.gen = Generator(random.Random(self.seed), self.now, self.turns, self.pinned)
            rng = self.gen.rng
            self.user_id = rng.randint(100_000_000, 999_999_999)
            first = rng.choice(text.FIRST)
            self.user_name = self.username or f"{first.lower()}{rng.randint(10, 9999)}"
            self.characters = {}
            for _ in range(self.n_characters):
                char = self.gen.character()
                self.characters[char.id] = char
                self.add_chats(char.id, self.n_chats,
                               archived=min(self.n_archived, max(0, self.n_chats - 1)))
            self.clear_faults()

    def add_chats(self, char_id: str, count: int, *, archived: int = 0,
                  turns: int | None = None) -> list[str]:
        """``count`` new chats, the oldest ``archived`` of them archived; ids newest first."""
        with self.lock:
            char = self.characters[char_id]
            user = (str(self.user_id), self.user_name)
            made = [self.gen.chat(char, user, turns) for _ in range(count)]
            made.sort(key=lambda c: c.created)
            for index, chat in enumerate(made):
                if index < archived:
                    chat.state = ARCHIVED
                char.chats[chat.id] = chat
            return [c.id for c in reversed(made)]

    def clear_faults(self) -> None:
        with self.lock:
            super().clear_faults()
            self._pages.clear()

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {"user_id": self.user_id, "user_name": self.user_name,
                    "characters": dump_data(self.characters)}

    def load(self, data: Mapping[str, Any]) -> None:
        characters = load_data(data["characters"])
        with self.lock:
            self.user_id = int(data["user_id"])
            self.user_name = str(data["user_name"])
            self.characters = characters

    # -- knobs beyond the base -----------------------------------------------------------

    def cloudflare_block_next(self, n: int = 1, status: int = 429, *,
                              retry_after: float | None = None, plain: bool = False) -> None:
        """Answer the next ``n`` requests with Cloudflare's error 1015 rate-limit page."""
        with self.lock:
            self._pages.extend([(status, "1015", plain, retry_after)] * n)

    def html_error_next(self, n: int = 1, status: int = 502) -> None:
        """Answer the next ``n`` requests with a Cloudflare HTML 5xx page."""
        with self.lock:
            self._pages.extend([(status, "5xx", False, None)] * n)

    # -- the contract of every fake ----------------------------------------------------

    @classmethod
    def sized(cls, *, conversations: int, messages: int, seed: int = 0) -> Self:
        return cls(seed=seed, characters=1, chats=conversations, turns=(messages, messages),
                   archived=0)

    def client_config(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"token": self.client_token}, {"neo_url": base_url, "plus_url": base_url}

    def conversation_ids(self) -> set[str]:
        """Chats still reachable with content: an archived, empty chat is what erasing a
        conversation leaves behind, so it does not count."""
        with self.lock:
            return {c.id for ch in self.characters.values() for c in ch.chats.values()
                    if c.turns or c.state != ARCHIVED}

    def message_ids(self, conversation_id: str) -> list[str]:
        with self.lock:
            chat = self.find_chat(conversation_id)
            return [t.id for t in chat.turns] if chat else []

    def people_lines(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        for char in self.characters.values():
            for chat in char.chats.values():
                for turn in chat.turns:
                    if turn.is_human:
                        shown = next(c for c in turn.candidates if c.id == turn.primary)
                        yield turn.id, partial(setattr, shown, "text")

    def revoke_credentials(self) -> None:
        with self.lock:
            self.tokens = frozenset()

    def character_ids(self) -> list[str]:
        with self.lock:
            return list(self.characters)

    def chat_ids(self, char_id: str) -> list[str]:
        """Every chat of a character, archived ones included, newest first."""
        with self.lock:
            return [c.id for c in self.characters[char_id].newest_first()]

    def find_chat(self, chat_id: str) -> Chat | None:
        with self.lock:
            for char in self.characters.values():
                if chat_id in char.chats:
                    return char.chats[chat_id]
            return None

    # -- HTTP ----------------------------------------------------------------------------

    def error(self, status: int, text: str, headers: Mapping[str, str] | None = None
              ) -> FakeResponse:
        return json_response(status, {"command": "neo_error", "comment": text}, headers)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
               arrived: float | None = None) -> FakeResponse:
        # The base drops the query before routing; list and page parameters live there.
        self._query.params = parse_qs(urlsplit(path).query)
        return super().handle(method, path, headers, body, arrived)

    def _param(self, name: str, default: str = "") -> str:
        values: dict[str, list[str]] = getattr(self._query, "params", {})
        return values.get(name, [default])[0]

    def _page_fault(self) -> FakeResponse | None:
        if not self._pages:
            return None
        status, kind, plain, retry_after = self._pages.pop(0)
        headers = {"Server": "cloudflare", "CF-RAY": "8f1e2d3c4b5a6978-AMS"}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if kind == "1015":
            page = "error code: 1015" if plain else CLOUDFLARE_1015
            kind_header = "text/plain; charset=UTF-8" if plain else "text/html; charset=UTF-8"
        else:
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                      504: "Gateway Time-out"}.get(status, "Server Error")
            page = CLOUDFLARE_5XX.format(status=status, reason=reason)
            kind_header = "text/html"
        return FakeResponse(status, {**headers, "Content-Type": kind_header}, page.encode())

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes
              ) -> FakeResponse:
        fault = self._page_fault()
        if fault is not None:
            return fault
        auth = headers.get("authorization", "")
        if not auth:
            if path == "/chat/user/" and method == "GET":
                return json_response(200, user_json(0, "ANONYMOUS"))
            return json_response(403, {"detail": NO_CREDENTIALS})
        if not auth.startswith("Token ") or auth[6:] not in self.tokens:
            return json_response(401, {"detail": INVALID_TOKEN})
        parts = [p for p in path.split("/") if p]
        wanted = {"GET": self._get, "POST": self._post, "PATCH": self._patch}.get(method)
        answer = wanted(parts, body) if wanted else None
        if answer is None:
            known = self._get(parts, b"") is not None if method != "GET" else False
            return self.error(405 if known else 404, "Method not allowed" if known
                              else "Not Found")
        return answer

    def _get(self, parts: list[str], body: bytes) -> FakeResponse | None:
        if parts == ["chat", "user"]:
            return json_response(200, user_json(self.user_id, self.user_name))
        if parts == ["chats", "recent"]:
            return json_response(200, {"chats": self._recent_chats()})
        if parts[:2] == ["chats", "recent"] and len(parts) == 3:
            char = self.characters.get(parts[2])
            active = [c for c in char.newest_first() if c.state != ARCHIVED] if char else []
            if not active:
                return json_response(200, {})  # CAINode reads a missing key as "no chat"
            return json_response(200, {"chats": [self._chat(c, recent=True)
                                                 for c in active]})
        if parts == ["chats"]:
            return self._chats()
        if len(parts) == 2 and parts[0] in ("chat", "turns"):
            chat = self.find_chat(parts[1])
            if chat is None:
                return self.error(404, "Chat not found")
            if parts[0] == "chat":
                return json_response(200, {"chat": self._chat(chat)})
            return self._turns(chat)
        return None

    def _chats(self) -> FakeResponse:
        ids = [i for i in self._param("character_ids").split(",") if i]
        if not ids:
            return self.error(400, "character_ids is required")
        try:
            previews = int(self._param("num_preview_turns", "2"))
        except ValueError:
            return self.error(400, "num_preview_turns must be a number")
        chats = [c for i in ids if (char := self.characters.get(i))
                 for c in char.newest_first()]
        return json_response(200, {"chats": [self._chat(c, previews=previews)
                                             for c in chats]})

    def _turns(self, chat: Chat) -> FakeResponse:
        turns = chat.turns[::-1]
        if self._param("pinned_only").lower() == "true":
            turns = [t for t in turns if t.pinned]
        token = self._param("next_token")
        if token:
            try:
                before = datetime.fromisoformat(
                    base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)[0])
            except ValueError:
                return self.error(400, "Invalid next_token")
            turns = [t for t in turns if t.at < before]
        page, rest = turns[:self.page_size], turns[self.page_size:]
        style = self.last_token_style
        meta: dict[str, Any] = {}
        if rest or (len(page) == self.page_size and style == "extra_page"):
            cursor = f"{page[-1].at.isoformat()}|{page[-1].id}"
            meta["next_token"] = base64.urlsafe_b64encode(cursor.encode()).decode()
        elif style != "absent":
            meta["next_token"] = "" if style == "empty" else None
        return json_response(200, {"turns": [turn_json(chat, t) for t in page],
                                   "meta": meta})

    def _post(self, parts: list[str], body: bytes) -> FakeResponse | None:
        if len(parts) != 3 or parts[0] != "turns" or parts[2] != "remove":
            return None
        chat = self.find_chat(parts[1])
        if chat is None:
            return self.error(404, "Chat not found")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return self.error(400, "Request body is not valid JSON")
        ids = payload.get("turn_ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return self.error(400, "turn_ids must be a non-empty list of turn ids")
        if self.max_turn_ids is not None and len(ids) > self.max_turn_ids:
            return self.error(400, f"Too many turn_ids (at most {self.max_turn_ids})")
        doomed = set(ids)
        removed = [t.id for t in chat.turns if t.id in doomed]
        if removed:
            chat.turns = [t for t in chat.turns if t.id not in doomed]
            for turn_id in removed:
                self.record_delete(turn_id)
            self.changed()
        if self.take_reset():
            raise ConnectionDropped
        return json_response(200, {})

    def _patch(self, parts: list[str], body: bytes) -> FakeResponse | None:
        if len(parts) != 3 or parts[0] != "chat" or parts[2] not in ("archive", "unarchive"):
            return None
        chat = self.find_chat(parts[1])
        if chat is None:
            return self.error(404, "Chat not found")
        archive = parts[2] == "archive"
        if (chat.state == ARCHIVED) == archive:
            return self.error(400, f"Chat is already {'archived' if archive else 'active'}")
        chat.state = ARCHIVED if archive else "STATE_ACTIVE"
        if archive:
            self.record_delete(chat.id)
        self.changed()
        if archive and self.take_reset():
            raise ConnectionDropped
        return json_response(200, {})

    # -- JSON shapes ---------------------------------------------------------------------

    def _recent_chats(self) -> list[dict[str, Any]]:
        latest = []
        for char in self.characters.values():
            active = [c for c in char.newest_first() if c.state != ARCHIVED]
            if active:
                latest.append(active[0])
        latest.sort(key=lambda c: c.last_activity(), reverse=True)
        return [self._chat(c, recent=True) for c in latest]

    def _chat(self, chat: Chat, *, recent: bool = False, previews: int = 0) -> dict[str, Any]:
        char = self.characters[chat.character_id] if recent else None
        return chat_json(chat, str(self.user_id), char, previews)
