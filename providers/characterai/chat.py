"""Character.AI chat v2 ("neo"): chats, turns, turn removal and archiving.

Character.AI publishes no API documentation. This client speaks the web API as the public
clients do: PyCharacterAI (https://github.com/Xtr4F/PyCharacterAI), whose turn removal
over REST is followed here, kramcat/CharacterAI (https://github.com/kramcat/CharacterAI)
and node_characterai (https://github.com/realcoloride/node_characterai).

Two hosts, both options so that a gateway or one local fake can stand in: ``neo_url``
(chats and turns) and ``plus_url`` (the account). Every request carries
``Authorization: Token <token>``. Character.AI's error answers (neo_error bodies, Cloudflare
pages, CSRF pages) are mapped in ``errors``, shared with the legacy provider.

There is no call that lists characters or deletes a chat, so:

- Characters are those of the recent chats (``/chats/recent/``, one entry per recently used
  character). A character hidden from the recents, or whose chats are all archived, is not
  seen; its chats are then not mirrored either.
- A character's conversations are ``/chats/?character_ids=`` plus its recent chat, deduped
  by ``chat_id``. Archived chats (``STATE_ARCHIVED``) come back with state "archived".
- Erasing a conversation reads the chat (``GET /chat/{id}/``) and its turns, removes every
  turn, then archives the empty chat. It is "erased" only when every removal and the
  archive were acknowledged; removed messages with a refused archive are "failed" (the chat
  is not fully erased), a lost answer "unknown". An already archived chat is emptied but
  not archived again; an archived, empty chat is "already_gone". Every turn goes, pinned
  ones included: whether a chat holding pinned messages may be erased is the dashboard's
  decision, taken when the job is frozen.
- Cloudflare pages (error 1015, challenges), CSRF pages and neo_error bodies are told apart
  in ``errors``: a Cloudflare block is RateLimited or TemporaryError, never a bad token.
  The rate budget is 2 requests/s, burst 4 (Character.AI's limit is unknown).

Choices made where no public source settles the question:

- ``meta.next_token`` on the last ``/turns/`` page: null, absent and "" all end the paging,
  as does a page without turns. A token seen twice raises ProtocolError instead of looping.
  Turns come newest first; they are returned oldest first (position 0 = oldest).
- ``/chats/recent/`` and ``/chats/`` are read as complete (no paging parameter is known); a
  missing or null ``chats`` key means none. Chats or turns without an id are skipped.
- The chat list is asked with ``num_preview_turns=1`` (not 0): the newest preview turn gives
  ``last_message_at``, so an incremental sync re-reads exactly the chats that changed.
- ``POST /turns/{chat_id}/remove``: HTTP 2xx is the acknowledgement whatever the body (none,
  ``{}`` or anything else without an error). At most 50 turn ids are sent per call (the real
  limit is unknown; 50 is the page size, so one page read back is one call). A 404 or a
  "not found" neo_error on a remove means the chat is gone: its turns are "already_gone".
- Archiving an already archived chat: an error whose text says "already archived" counts as
  archived. An unknown chat on ``GET /chat/{id}/`` or ``/turns/`` is NotFound: its targets
  are "already_gone" and verify says "gone".
- verify(): a message is present while its chat lists the turn. A conversation is "gone"
  when the chat is unknown or archived and empty (the most Character.AI allows: the empty
  chat itself remains); an active chat, even empty, is "present" since its erase is not done.
- Message text is the candidate whose ``candidate_id`` is ``primary_candidate_id``, else the
  last candidate (regenerations are appended). ``is_human`` is ``author.is_human`` when it
  is a boolean, else whether ``author_id`` is numeric (human ids are, character ids are not).
- The token: a pasted leading "Token " is removed; one not 40 characters long is used anyway
  and a note says so (node_characterai only warns).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from ..base import Provider
from ..errors import AuthError, NotFound, PermanentError, ProtocolError
from ..http import Classifier, HttpClient
from ..records import (
    Account,
    Capabilities,
    Character,
    Conversation,
    FieldSpec,
    Message,
    Outcome,
    Presence,
    Target,
)
from ..times import utc
from .chat_erase import ARCHIVED, MAX_REMOVE, erase_targets, verify_targets
from .errors import (
    AUTH_STATUSES,
    ERROR_KEYS,
    HOSTS,
    auth_headers,
    classifier,
    normalize_token,
)

NEO_URL = "https://neo.character.ai"
PLUS_URL = "https://plus.character.ai"
USER = "/chat/user/"
RECENT = "/chats/recent/"
CHATS = "/chats/"


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _objects(data: Any, key: str, what: str) -> list[dict[str, Any]]:
    """``data[key]`` as a list of objects; a missing key, null or empty body mean none."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ProtocolError(f"Character.AI sent {what} that is not an object")
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ProtocolError(f"Character.AI sent {what} whose '{key}' is not a list of objects")
    return items


def turn_id(turn: Mapping[str, Any]) -> str:
    key = turn.get("turn_key")
    return _str(key.get("turn_id")) if isinstance(key, dict) else ""


def turn_text(turn: Mapping[str, Any]) -> str:
    """The primary candidate's text, else the last candidate's."""
    chosen: Any = None
    primary = turn.get("primary_candidate_id")
    for candidate in turn.get("candidates") or ():
        if isinstance(candidate, dict):
            chosen = candidate
            if primary and candidate.get("candidate_id") == primary:
                break
    content = chosen.get("raw_content") if chosen is not None else None
    return content if isinstance(content, str) else ""


def _is_human(author: Mapping[str, Any]) -> bool:
    flag = author.get("is_human")
    if isinstance(flag, bool):
        return flag
    return _str(author.get("author_id")).isdigit()


def _since_known(messages: Sequence[Message], known_id: str) -> list[Message] | None:
    """``messages`` (oldest first) from ``known_id`` on, re-counted from it; None without it."""
    base = next((m.position for m in messages if m.provider_id == known_id), None)
    if base is None:
        return None
    return [dataclasses.replace(m, position=m.position - base) for m in messages
            if m.position >= base]


def _message(chat_id: str, position: int, turn: Mapping[str, Any]) -> Message:
    raw_author = turn.get("author")
    author: Mapping[str, Any] = raw_author if isinstance(raw_author, dict) else {}
    human = _is_human(author)
    return Message(
        provider_id=turn_id(turn),
        conversation_id=chat_id,
        position=position,
        author=_str(author.get("name")) or ("You" if human else "Character"),
        is_human=human,
        text=turn_text(turn),
        created_at=utc(turn.get("create_time")),
        pinned=turn.get("is_pinned") is True,
    )


class CharacterAIProvider(Provider):
    name: ClassVar[str] = "characterai"
    label: ClassVar[str] = "Character.AI"
    public_hosts: ClassVar[tuple[str, ...]] = HOSTS
    capabilities: ClassVar[Capabilities] = Capabilities(
        erase_kinds=("message", "conversation"),
        max_batch=MAX_REMOVE,  # turn ids per remove call; the real limit is UNCONFIRMED
        soft_delete=False,
        verify="Lists the chat's messages again and checks the removed ones are gone; a "
               "whole chat counts as gone once it is archived and empty.",
        can=(
            "Lethe can delete single messages of a chat.",
            "Lethe can erase a whole chat: it deletes every message, then archives the "
            "empty chat.",
        ),
        cannot=(
            "Lethe cannot delete the chat itself: the empty, archived chat stays in the "
            "account.",
            "Lethe cannot erase pinned messages unless you choose to include them.",
            "Lethe cannot see characters missing from the account's recent chats, or whose "
            "chats are all archived, so it cannot erase their chats either.",
            "Lethe cannot erase what the character's creator or Character.AI keep "
            "elsewhere, such as memories or moderation copies.",
        ),
        # Character.AI sits behind Cloudflare, which blocks bursts (error 1015); the real
        # numbers are UNCONFIRMED, so stay gentle.
        requests_per_second=2.0,
        burst=4,
    )
    fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("token", "Token", secret=True,
                  help="The 40-character token of a logged-in browser session (the "
                       "Authorization header of requests to neo.character.ai, without "
                       "'Token ')."),
        FieldSpec("neo_url", "Chat API URL", default=NEO_URL, required=False,
                  help="Chats and messages. Change only for a gateway or a local fake."),
        FieldSpec("plus_url", "Account API URL", default=PLUS_URL, required=False,
                  help="The account check. Change only for a gateway or a local fake."),
    )
    error_keys: ClassVar[tuple[str, ...]] = ERROR_KEYS
    auth_statuses: ClassVar[tuple[int, ...]] = AUTH_STATUSES

    def __init__(self, secrets: Mapping[str, str], options: Mapping[str, str],
                 **kwargs: Any) -> None:
        super().__init__(secrets, options, **kwargs)
        token = normalize_token(self._secrets["token"])
        if not token:
            raise PermanentError("Character.AI: the secret 'Token' is missing")
        self._secrets["token"] = token
        if len(token) != 40:
            self.notes.append("The Character.AI token is not 40 characters long; if the "
                              "account check fails, copy it again from the browser.")
        self._plus: HttpClient | None = None
        self._recent: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options['neo_url']}>"

    def _base_url(self) -> str:
        return self.options["neo_url"]

    def _headers(self) -> dict[str, str]:
        return auth_headers(self.secret("token"))

    def _classifier(self) -> Classifier:
        return classifier(self.label)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if self.options["plus_url"] == self.options["neo_url"]:
            self._plus = self.http  # one gateway or fake serving both: one connection pool
        else:
            self._plus = self._open(self.options["plus_url"])
        self._recent = None
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._plus is not None and self._plus is not self._http:
            await self._plus.aclose()
        self._plus = None
        await super().__aexit__(exc_type, exc, tb)

    @property
    def plus(self) -> HttpClient:
        if self._plus is None:
            raise RuntimeError("use the provider inside `async with provider:`")
        return self._plus

    # -- reading -------------------------------------------------------------------------

    async def check(self) -> Account:
        data = await self.plus.read("GET", USER)
        outer = data.get("user") if isinstance(data, dict) else None
        user = outer.get("user") if isinstance(outer, dict) else None
        if not isinstance(user, dict):
            raise ProtocolError("Character.AI sent an account without a user")
        username = _str(user.get("username"))
        if username == "ANONYMOUS":
            raise AuthError("Character.AI treats this token as an anonymous session. Maybe "
                            "your token is invalid?", status=200)
        ident = _str(user.get("id"))
        if not ident:
            raise ProtocolError("Character.AI sent an account without an id")
        return Account(id=ident, name=username or _str(user.get("first_name")) or ident)

    async def recent_chats(self) -> list[dict[str, Any]]:
        """The recent chats, read once per ``async with`` (characters and chats share it)."""
        if self._recent is None:
            chats = _objects(await self.http.read("GET", RECENT), "chats", "recent chats")
            self._recent = [c for c in chats if _str(c.get("chat_id"))]
        return self._recent

    async def characters(self) -> AsyncIterator[Character]:
        seen: set[str] = set()
        for chat in await self.recent_chats():
            char_id = _str(chat.get("character_id"))
            if not char_id or char_id in seen:
                continue
            seen.add(char_id)
            yield Character(provider_id=char_id, name=_str(chat.get("character_name")))

    async def chats_of(self, char_id: str) -> list[dict[str, Any]]:
        """Every chat with one character, archived ones included, deduped with the recents."""
        data = await self.http.read("GET", CHATS, params={"character_ids": char_id,
                                                          "num_preview_turns": "1"})
        found: dict[str, dict[str, Any]] = {}
        for chat in _objects(data, "chats", "a chat list") + await self.recent_chats():
            chat_id = _str(chat.get("chat_id"))
            owner = _str(chat.get("character_id"))
            if chat_id and owner in ("", char_id):
                found.setdefault(chat_id, chat)
        return list(found.values())

    async def conversations(
        self, character: Character | None = None
    ) -> AsyncIterator[Conversation]:
        if character is not None:
            char_ids = [character.provider_id]
        else:
            char_ids = [c.provider_id async for c in self.characters()]
        for char_id in char_ids:
            for chat in await self.chats_of(char_id):
                previews = [t for t in chat.get("preview_turns") or [] if isinstance(t, dict)]
                times = [t for t in (utc(p.get("create_time")) for p in previews) if t]
                yield Conversation(
                    provider_id=_str(chat["chat_id"]),
                    character_id=char_id,
                    title=_str(chat.get("name")),
                    started_at=utc(chat.get("create_time")),
                    last_message_at=max(times) if times else None,
                    state="archived" if chat.get("state") == ARCHIVED else "active",
                )

    async def pages(self, chat_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The chat's turns a ``next_token`` page (50) at a time, newest first, each turn
        once."""
        seen_turns: set[str] = set()
        seen_tokens: set[str] = set()
        token = ""  # an empty starting value, not a password  # nosec B105
        while True:
            params = {"next_token": token} if token else None
            data = await self.http.read("GET", f"/turns/{chat_id}/", params=params)
            page = _objects(data, "turns", "a page of messages")
            fresh = []
            for turn in page:
                ident = turn_id(turn)
                if ident and ident not in seen_turns:
                    seen_turns.add(ident)
                    fresh.append(turn)
            yield fresh
            meta = data.get("meta") if isinstance(data, dict) else None
            token = _str(meta.get("next_token")) if isinstance(meta, dict) else ""
            if not page or not token:
                return
            if token in seen_tokens:
                raise ProtocolError("Character.AI sent the same next_token twice while "
                                    "paging through a chat")
            seen_tokens.add(token)

    async def turns(self, chat_id: str) -> list[dict[str, Any]]:
        """Every turn of a chat, oldest first."""
        newest_first = [turn async for page in self.pages(chat_id) for turn in page]
        return newest_first[::-1]

    async def messages(self, conversation: Conversation) -> AsyncIterator[Message]:
        chat_id = conversation.provider_id
        for position, turn in enumerate(await self.turns(chat_id)):
            yield _message(chat_id, position, turn)

    async def newest_messages(self, conversation: Conversation, known_id: str
                              ) -> list[Message] | None:
        """Pages newest first until the one holding ``known_id``: a chat that grew by a
        few turns costs one request, not one per 50 turns of its history."""
        chat_id = conversation.provider_id
        newest_first: list[dict[str, Any]] = []
        async for page in self.pages(chat_id):
            newest_first += page
            if any(turn_id(t) == known_id for t in page):
                return _since_known([_message(chat_id, position, turn) for position, turn
                                    in enumerate(newest_first[::-1])], known_id)
        return None

    async def chat(self, chat_id: str) -> dict[str, Any] | None:
        """The chat object (``{}`` if the answer has none), or None when it is unknown."""
        try:
            data = await self.http.read("GET", f"/chat/{chat_id}/")
        except NotFound:
            return None
        chat = data.get("chat") if isinstance(data, dict) else None
        return chat if isinstance(chat, dict) else {}

    async def turn_ids(self, chat_id: str) -> list[str] | None:
        """The chat's turn ids oldest first, or None when the chat is unknown."""
        try:
            return [turn_id(t) for t in await self.turns(chat_id)]
        except NotFound:
            return None

    # -- erasing (chat_erase) ------------------------------------------------------------

    async def remove_turns(self, chat_id: str, ids: Sequence[str]) -> Any:
        return await self.http.write("POST", f"/turns/{chat_id}/remove",
                                     json_body={"turn_ids": list(ids)})

    async def archive(self, chat_id: str) -> Any:
        return await self.http.write("PATCH", f"/chat/{chat_id}/archive", json_body={})

    async def erase(self, targets: Sequence[Target]) -> list[Outcome]:
        return await erase_targets(self, targets)

    async def verify(self, targets: Sequence[Target]) -> list[Presence]:
        return await verify_targets(self, targets)
