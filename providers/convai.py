"""Convai: characters, chat-history sessions and session deletes.

Documented under https://docs.convai.com/api-docs/api-reference/core-api-reference/ (in
``character-crafting-apis/``: ``chat-history-api`` and ``character-list-api``). The delete's
page is hidden there; its source is ``chat-history-delete-api.md`` in the same folder of
https://github.com/Conv-AI/Convai-Documentation (under ``api-reference/``).

Every call is ``POST`` with a JSON body and the ``CONVAI-API-KEY`` header. The unit of
erasure is the whole session: Convai has no call that removes one interaction, so message
ids here are synthetic (``"<sessionID>:<n>"``, n counting speaker lines oldest first) and
only locate a line inside the mirror.

Choices made where no public source settles the question:

- Error bodies: the provider's text is read from ``ERROR``, ``API_ERROR`` or
  ``INTERNAL_ERROR`` (then ``error``/``message``/``detail``, then a short plain body).
  A 200 whose object carries one of those keys is treated as a refusal.
- 401 means a bad key (AuthError). 403 is read as the plan refusing the endpoint (chat
  history needs the Scale plan, delete is "select customers" only), so it is a
  PermanentError: the key is fine, and a refused delete is reported as ``failed``.
- An unknown ``charID``: the only documented answer is the 400 "one or more database calls
  failed" of ``/character/get``. Because that text could also be a real outage, a 400/404
  on a character call is reported as NotFound only after ``/character/list`` confirms the
  character is really absent; otherwise the original error is raised.
- Lists: ``/character/list`` must be an object with a ``characters`` array and
  ``chatHistory/list`` / ``details`` must be arrays; a missing key, ``null`` or an empty
  body mean "nothing", any other shape is a ProtocolError. Order is not relied on
  (sessions come back as the provider sends them, interactions are sorted by timestamp).
- Delete: any 200 object without an error key is an acknowledgement (the Chinese doc shows
  the status text translated, so "SUCCESSFULLY DELETED" is recorded, not required). The
  largest number of ``sessionIDs`` per call is unknown; we send at most 100.
- Before deleting, a character's sessions are listed so that ids the provider no longer
  returns are reported ``already_gone`` and never sent again. One listing serves the
  deletes of LISTING_TTL seconds (ids we delete leave it; an uncertain delete drops it), so
  a long job spends its rate budget on deletes, not on reading the same list again. A
  session deleted elsewhere within that time is sent once more: the outcome says "erased"
  where "already gone" was true, and verification still reads afresh.
- Times: ``last_interacted_with`` and interaction timestamps are naive and read as UTC;
  session ``date`` ("DD-MM-YYYY") + ``time`` are read as UTC and used as the start time,
  although the documented example's session time is later than its first interaction.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from .base import Provider, batched
from .errors import NotFound, PermanentError, ProtocolError, ProviderError, TemporaryError
from .records import (
    Account,
    Capabilities,
    Character,
    Conversation,
    FieldSpec,
    Message,
    Outcome,
    OutcomeStatus,
    Presence,
    Target,
)
from .times import utc

# How long one listing of a character's sessions may stand in for reading it again before
# a delete (seconds).
LISTING_TTL = 30.0

DEFAULT_BASE_URL = "https://api.convai.com"
LIST_CHARACTERS = "/character/list"
LIST_SESSIONS = "/character/chatHistory/list"
SESSION_DETAILS = "/character/chatHistory/details"
DELETE_SESSIONS = "/character/chatHistory/delete"

_ERROR_KEYS = ("ERROR", "API_ERROR", "INTERNAL_ERROR", "error", "message", "detail")
MESSAGE_REFUSED = "Convai erases whole sessions only; erase the conversation instead"




def _session_start(date: object, time: object) -> datetime | None:
    if not isinstance(date, str):
        return None
    text, fmt = date.strip(), "%d-%m-%Y"
    if isinstance(time, str) and time.strip():
        text, fmt = f"{text} {time.strip()}", "%d-%m-%Y %H:%M:%S"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def _error_in(body: dict[str, Any]) -> str:
    for key in _ERROR_KEYS[:3]:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return ""


def _id(value: object, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"Convai sent a {what} without a usable id")


def _array(data: Any, what: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ProtocolError(f"Convai sent {what} that is not a list of objects")
    return data


class ConvaiProvider(Provider):
    name: ClassVar[str] = "convai"
    label: ClassVar[str] = "Convai"
    public_hosts: ClassVar[tuple[str, ...]] = ("api.convai.com",)
    capabilities: ClassVar[Capabilities] = Capabilities(
        erase_kinds=("conversation",),
        max_batch=100,  # the real limit per delete call is UNCONFIRMED
        soft_delete=False,
        verify="Lists the character's sessions again and checks the session id is gone.",
        can=("Lethe can delete whole sessions, with every message in them.",),
        cannot=(
            "Lethe cannot delete single messages of a session.",
            "Lethe cannot undo what a character learned from a session added to its "
            "memory: deleting the session leaves what the character learned.",
            "Lethe cannot delete on every Convai plan: where the plan does not allow "
            "deleting, each delete is reported as failed.",
        ),
        requests_per_second=5.0,
        burst=5,
    )
    fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("api_key", "API key", secret=True,
                  help="Found under the key icon when logged in to convai.com."),
        FieldSpec("base_url", "Base URL", default=DEFAULT_BASE_URL, required=False,
                  help="Change only for a gateway or a local fake."),
    )
    error_keys: ClassVar[tuple[str, ...]] = _ERROR_KEYS
    auth_statuses: ClassVar[tuple[int, ...]] = (401,)

    def _headers(self) -> dict[str, str]:
        return {"CONVAI-API-KEY": self.secret("api_key"), "Accept": "application/json"}

    async def __aenter__(self) -> Self:
        # charID -> (when read, session ids still listed), for erase() only.
        self._listed: dict[str, tuple[float, set[str]]] = {}
        return await super().__aenter__()

    async def _listed_for_erase(self, char_id: str) -> set[str]:
        read_at, ids = self._listed.get(char_id, (0.0, set()))
        if time.monotonic() - read_at > LISTING_TTL:
            read_at = time.monotonic()
            try:
                ids = {raw["sessionID"] for raw in await self._sessions(char_id)}
            except NotFound:
                ids = set()
            self._listed[char_id] = (read_at, ids)
        return ids

    # -- requests ------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any] | None = None, *,
                    write: bool = False) -> Any:
        send = self.http.write if write else self.http.read
        data = await send("POST", path, json_body=body)
        if isinstance(data, dict) and (text := _error_in(data)):
            raise PermanentError(f"Convai refused the request: {text}", status=200)
        return data

    async def _raw_characters(self) -> list[dict[str, Any]]:
        data = await self._post(LIST_CHARACTERS)
        if data is not None and not isinstance(data, dict):
            raise ProtocolError("Convai sent a character list that is not an object")
        chars = _array((data or {}).get("characters"), "characters")
        for raw in chars:
            _id(raw.get("character_id"), "character")
        return chars

    async def _character_exists(self, char_id: str) -> bool:
        return any(str(c.get("character_id")) == char_id for c in await self._raw_characters())

    async def _for_character(self, char_id: str, path: str, body: dict[str, Any], *,
                             write: bool = False) -> Any:
        try:
            return await self._post(path, body, write=write)
        except PermanentError as exc:
            if exc.status in (400, 404) and not await self._character_exists(char_id):
                raise NotFound(
                    f"Convai does not know the character {char_id}", status=exc.status
                ) from exc
            raise

    async def _sessions(self, char_id: str) -> list[dict[str, Any]]:
        # limit is a string in Convai's API; "-1" means every session.
        data = await self._for_character(char_id, LIST_SESSIONS,
                                         {"charID": char_id, "limit": "-1"})
        sessions = _array(data, "a session list")
        for raw in sessions:
            raw["sessionID"] = _id(raw.get("sessionID"), "session")
        return sessions

    async def _owners(self) -> dict[str, str]:
        """sessionID → charID over every character, for targets that lack a character."""
        owners: dict[str, str] = {}
        async for character in self.characters():
            for raw in await self._sessions(character.provider_id):
                owners[raw["sessionID"]] = character.provider_id
        return owners

    # -- reading -------------------------------------------------------------------------

    async def check(self) -> Account:
        chars = await self._raw_characters()
        key = self.secret("api_key")
        user_id = next((str(c["user_id"]) for c in chars if c.get("user_id")), "")
        # A stable id that does not reveal the key when the account has no character yet.
        ident = user_id or "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        hint = f" …{key[-4:]}" if len(key) >= 12 else ""
        return Account(id=ident, name=f"Convai key{hint}")

    async def characters(self) -> AsyncIterator[Character]:
        for raw in await self._raw_characters():
            yield Character(
                provider_id=_id(raw.get("character_id"), "character"),
                name=str(raw.get("character_name") or ""),
                description=str(raw.get("description") or ""),
                last_interaction=utc(raw.get("last_interacted_with")),
            )

    async def conversations(
        self, character: Character | None = None
    ) -> AsyncIterator[Conversation]:
        if character is not None:
            char_ids = [character.provider_id]
        else:
            char_ids = [c.provider_id async for c in self.characters()]
        for char_id in char_ids:
            for raw in await self._sessions(char_id):
                yield Conversation(
                    provider_id=raw["sessionID"],
                    character_id=char_id,
                    started_at=_session_start(raw.get("date"), raw.get("time")),
                    flags={"in_memory": bool(raw.get("is_added_to_memory"))},
                )

    async def messages(self, conversation: Conversation) -> AsyncIterator[Message]:
        session_id = conversation.provider_id
        data = await self._for_character(
            conversation.character_id, SESSION_DETAILS,
            {"charID": conversation.character_id, "sessionID": session_id},
        )
        entries = [(utc(e.get("timestamp")), e) for e in _array(data, "session details")]
        if all(when is not None for when, _ in entries):
            entries.sort(key=lambda pair: pair[0] or datetime.min)
        position = 0
        for when, entry in entries:
            lines = entry.get("interaction") or []
            if not isinstance(lines, list):
                raise ProtocolError("Convai sent an interaction that is not a list")
            for line in lines:
                if not isinstance(line, dict):
                    raise ProtocolError("Convai sent an interaction line that is not an object")
                speaker = str(line.get("speaker") or "")
                text = line.get("message")
                yield Message(
                    provider_id=f"{session_id}:{position}",
                    conversation_id=session_id,
                    position=position,
                    author=speaker or "Unknown",
                    is_human=speaker.lower() == "user",
                    text="" if text is None else str(text),
                    created_at=when,
                )
                position += 1

    # -- erasing -------------------------------------------------------------------------

    async def erase(self, targets: Sequence[Target]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        groups: dict[str, list[int]] = {}
        owners = (
            await self._owners()
            if any(t.kind == "conversation" and not t.character_id for t in targets)
            else {}
        )
        for index, target in enumerate(targets):
            if target.kind != "conversation":
                outcomes[index] = Outcome(target, "failed", MESSAGE_REFUSED)
                continue
            char_id = target.character_id or owners.get(target.provider_id, "")
            if not char_id:
                outcomes[index] = Outcome(target, "already_gone", "No character lists it.")
                continue
            groups.setdefault(char_id, []).append(index)
        try:
            for char_id, indexes in groups.items():
                await self._erase_for(char_id, [(i, targets[i]) for i in indexes], outcomes)
        except ProviderError as exc:
            # Auth, rate limit, or an outage before anything was sent: the job pauses or
            # retries later, and keeps what was already settled.
            exc.partial = [outcomes[i] for i in sorted(outcomes)]
            raise
        return [outcomes[i] for i in range(len(targets))]

    async def _erase_for(self, char_id: str, items: list[tuple[int, Target]],
                         outcomes: dict[int, Outcome]) -> None:
        try:
            listed = await self._listed_for_erase(char_id)
        except PermanentError as exc:
            for index, target in items:
                outcomes[index] = Outcome(target, "failed", exc.message)
            return
        pending: dict[str, list[int]] = {}
        for index, target in items:
            if target.provider_id in listed:
                pending.setdefault(target.provider_id, []).append(index)
            else:
                outcomes[index] = Outcome(target, "already_gone", "Convai no longer lists it.")
        refused: PermanentError | None = None
        for batch in batched(list(pending), self.capabilities.max_batch):
            if refused is not None:
                # The plan refuses every delete alike; do not hammer the endpoint.
                self._settle(batch, pending, items, outcomes, "failed", refused.message)
                continue
            try:
                data = await self._for_character(
                    char_id, DELETE_SESSIONS, {"charID": char_id, "sessionIDs": list(batch)},
                    write=True,
                )
            except TemporaryError as exc:
                if not exc.sent:
                    raise
                self._listed.pop(char_id, None)  # what is listed now is uncertain
                self._settle(batch, pending, items, outcomes, "unknown", exc.message)
            except ProtocolError as exc:
                self._listed.pop(char_id, None)
                self._settle(batch, pending, items, outcomes, "unknown", exc.message)
            except NotFound as exc:
                listed.clear()  # the character itself is gone, and every session with it
                self._settle(batch, pending, items, outcomes, "already_gone", exc.message)
            except PermanentError as exc:
                if exc.status == 403:
                    refused = exc
                self._settle(batch, pending, items, outcomes, "failed", exc.message)
            else:
                status = data.get("status") if isinstance(data, dict) else None
                response = {"status": status} if isinstance(status, str) else {}
                listed.difference_update(batch)
                self._settle(batch, pending, items, outcomes, "erased", "", response)

    @staticmethod
    def _settle(batch: Sequence[str], pending: dict[str, list[int]],
                items: list[tuple[int, Target]], outcomes: dict[int, Outcome],
                status: OutcomeStatus, detail: str, response: dict[str, Any] | None = None) -> None:
        by_index = dict(items)
        for session_id in batch:
            for index in pending[session_id]:
                outcomes[index] = Outcome(by_index[index], status, detail, response or {})

    async def verify(self, targets: Sequence[Target]) -> list[Presence]:
        owners = await self._owners() if any(not t.character_id for t in targets) else {}
        listed: dict[str, set[str]] = {}
        result: list[Presence] = []
        for target in targets:
            session_id = (
                target.provider_id if target.kind == "conversation" else target.conversation_id
            )
            char_id = target.character_id or owners.get(session_id, "")
            if char_id and char_id not in listed:
                try:
                    listed[char_id] = {raw["sessionID"] for raw in await self._sessions(char_id)}
                except NotFound:
                    listed[char_id] = set()
            present = bool(char_id) and session_id in listed[char_id]
            result.append(Presence(target, "present" if present else "gone"))
        return result
