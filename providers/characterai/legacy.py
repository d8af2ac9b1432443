"""Character.AI legacy chat v1 "histories".

Undocumented, like the rest of Character.AI's API: the endpoints and shapes are those the
public clients used, kramcat/CharacterAI (https://github.com/kramcat/CharacterAI),
node_characterai 1.x (https://github.com/realcoloride/node_characterai) and PyCharacterAI
1.x (https://github.com/Xtr4F/PyCharacterAI).

The ``plus`` host with ``Authorization: Token <token>`` (a pasted leading "Token " is
stripped). Character.AI's error answers (``{"detail"}``, ``{"status": "Error…"}``,
``{"force_login": true}``, Cloudflare pages) are mapped by ``errors``, shared with the
chat v2 provider. The unit of erasure is the message, by its ``uuid``; a history itself
cannot be deleted, so erasing a conversation deletes every message in it and leaves the
empty history behind.

These endpoints were deprecated on 2024-09-10 and may be gone. A 404 or 410 from the
character or history lists is not a failure: nothing is listed and ``notes`` says "This
account has no legacy histories (Character.AI answered 410 Gone)." After a 410 no further
list call is made (a 404 may be one unknown character, so the next is still asked). A
404/410 on one history's messages is NotFound for that conversation. ``check()`` uses
``/chat/user/``, which chat v2 clients still use, so it works either way.

Choices made where no public source settles the question:

- Characters: ``GET /chat/characters/recent/`` (``{"characters": [...]}``). The name is read
  from ``participant__name``, else ``name``; the description from ``title``, else
  ``description``; the last interaction from ``max_last_interaction`` when present.
- Histories: ``POST /chat/character/histories_v2/`` (kramcat/CharacterAI, and the CAI
  Tools exporter on plus with the same ``number``; a public C# client marks
  ``histories/`` "not working").
  Both paths take the same body and answer the same shape. We ask for ``number: 999``, the
  largest value a library sends; when exactly 999 come back a note says older ones may be
  missing. A missing ``histories`` key or ``null`` means none; order is not relied on.
- Messages: the first page is fetched without ``page_num`` (as every client does), then
  ``page_num=<next_page>`` while ``has_more`` is true. Whether page 1 is the newest or the
  oldest is UNCONFIRMED, so nothing depends on it: every page is collected, duplicates are
  dropped by ``uuid``, and the whole is sorted by ``id`` (a large integer that grows with
  time). Paging stops at ``has_more`` false or absent, an empty page, a ``next_page`` that is
  not an integer or was already asked for, or after 5000 pages (a ProtocolError).
- The transcript leaves out ``is_alternative`` messages (reply candidates the person swiped
  away) and ``deleted`` ones. Erasing a whole history deletes the alternatives too, so no
  text is left; erasing one message does not touch the alternatives of its turn (no field
  links them). Messages carry no time. ``src__is_human`` missing is read from the sender:
  characters' senders are ``internal_id:…`` users.
- Delete: ``{"history_id", "uuids_to_delete"}`` (the key was ``ids_to_delete`` before Feb
  2024). The largest list per call is unknown: we send at most 50 uuids. A 200 without an
  error (``{"status": "OK"}``) is the acknowledgement.
- Before deleting, the history is read back: uuids it no longer lists are ``already_gone``
  and never sent; ones it lists as ``deleted`` are reported as such. A history whose
  messages answer 404 counts as gone only when its character's history list (which must
  answer normally) no longer holds it; otherwise the targets fail.
- verify() re-reads the history: a message is gone when it is no longer listed and
  soft-deleted when it is listed as ``deleted``; a conversation is gone when no message is
  left (the empty history itself remains). A history that answers 404 and is confirmed
  absent is gone; one that cannot be read (410) raises NotFound rather than claim anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ..base import Provider
from ..errors import AuthError, NotFound, PermanentError, ProtocolError, ProviderError
from ..http import Classifier
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
from .errors import (
    AUTH_HINT,
    AUTH_STATUSES,
    ERROR_KEYS,
    HOSTS,
    auth_headers,
    classifier,
    normalize_token,
)
from .legacy_support import (
    as_object,
    as_objects,
    ident,
    message,
    message_number,
    send_deletes,
    settle,
)

DEFAULT_PLUS_URL = "https://plus.character.ai"
USER = "/chat/user/"
RECENT = "/chat/characters/recent/"
HISTORIES = "/chat/character/histories_v2/"
MESSAGES = "/chat/history/msgs/user/"
DELETE = "/chat/history/msgs/delete/"
HISTORIES_NUMBER = 999
DELETE_BATCH = 50
MAX_PAGES = 5000
GONE_STATUSES = (404, 410)
_REASONS = {404: "404 Not Found", 410: "410 Gone"}


def _gone(exc: ProviderError) -> bool:
    return isinstance(exc, PermanentError) and exc.status in GONE_STATUSES


class CharacterAILegacyProvider(Provider):
    name: ClassVar[str] = "characterai_legacy"
    label: ClassVar[str] = "Character.AI (legacy histories)"
    public_hosts: ClassVar[tuple[str, ...]] = HOSTS
    capabilities: ClassVar[Capabilities] = Capabilities(
        erase_kinds=("message", "conversation"),
        max_batch=50,
        soft_delete=False,
        verify="Reads the history's messages again and checks each one is no longer listed.",
        can=(
            "Lethe can delete single messages of a legacy (chat v1) history.",
            "Lethe can erase a whole history, including the replies that were swiped "
            "away.",
        ),
        cannot=(
            "Lethe cannot delete the history itself: the empty history stays in the "
            "account.",
            "Lethe cannot delete the swiped-away alternatives of a reply when it deletes "
            "only that message.",
            "Lethe cannot reach legacy histories once Character.AI retires them: then "
            "nothing can be listed or erased here.",
        ),
        requests_per_second=2.0,
        burst=4,
    )
    fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("token", "Token", secret=True,
                  help="The 40-character token from the browser session at character.ai "
                       "(the value after 'Token ' in the Authorization header)."),
        FieldSpec("plus_url", "Plus API URL", default=DEFAULT_PLUS_URL, required=False,
                  help="Change only for a gateway or a local fake."),
    )
    error_keys: ClassVar[tuple[str, ...]] = ERROR_KEYS
    auth_statuses: ClassVar[tuple[int, ...]] = AUTH_STATUSES

    def __init__(self, secrets: Mapping[str, str], options: Mapping[str, str],
                 **kwargs: Any) -> None:
        super().__init__(secrets, options, **kwargs)
        if not normalize_token(self.secret("token")):
            raise PermanentError(f"{self.label}: the secret 'Token' is missing")
        # Set once a list endpoint answered 410: the legacy API is retired for this account.
        self._retired = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options.get('plus_url', '')}>"

    def _base_url(self) -> str:
        return self.options["plus_url"]

    def _headers(self) -> dict[str, str]:
        return auth_headers(self.secret("token"))

    def _classifier(self) -> Classifier:
        return classifier(self.label)

    # -- reading -------------------------------------------------------------------------

    def _note_gone(self, exc: ProviderError) -> None:
        reason = _REASONS.get(exc.status or 0, f"HTTP {exc.status}")
        self.notes.append(f"This account has no legacy histories (Character.AI answered "
                          f"{reason}).")
        if exc.status == 410:
            self._retired = True

    async def check(self) -> Account:
        body = as_object(await self.http.read("GET", USER), "the account")
        user = as_object(body.get("user"), "the account")
        inner = as_object(user.get("user"), "the account")
        if not inner:
            raise ProtocolError("Character.AI sent an account without a user")
        username = inner.get("username")
        if not isinstance(username, str) or not username or username == "ANONYMOUS":
            raise AuthError(f"Character.AI treats this token as an anonymous visitor. "
                            f"{AUTH_HINT}", status=200)
        return Account(id=ident(inner.get("id"), "account"), name=username)

    async def _recent(self) -> list[dict[str, Any]]:
        data = await self.http.read("GET", RECENT)
        rows = as_objects(as_object(data, "recent characters").get("characters"),
                        "recent characters")
        for raw in rows:
            raw["external_id"] = ident(raw.get("external_id"), "character")
        return rows

    async def characters(self) -> AsyncIterator[Character]:
        if self._retired:
            return
        try:
            rows = await self._recent()
        except PermanentError as exc:
            if not _gone(exc):
                raise
            self._note_gone(exc)
            return
        for raw in rows:
            yield Character(
                provider_id=raw["external_id"],
                name=str(raw.get("participant__name") or raw.get("name") or ""),
                description=str(raw.get("title") or raw.get("description") or ""),
                last_interaction=utc(raw.get("max_last_interaction")),
            )

    async def _histories(self, char_id: str) -> list[dict[str, Any]]:
        data = await self.http.read("POST", HISTORIES, json_body={
            "external_id": char_id, "number": HISTORIES_NUMBER})
        rows = as_objects(as_object(data, "a history list").get("histories"), "a history list")
        for raw in rows:
            raw["external_id"] = ident(raw.get("external_id"), "history")
        return rows

    async def conversations(
        self, character: Character | None = None
    ) -> AsyncIterator[Conversation]:
        if character is not None:
            chars = [character]
        else:
            chars = [c async for c in self.characters()]
        for char in chars:
            if self._retired:
                return
            try:
                rows = await self._histories(char.provider_id)
            except PermanentError as exc:
                if not _gone(exc):
                    raise
                self._note_gone(exc)
                continue
            if len(rows) >= HISTORIES_NUMBER:
                self.notes.append(f"Character.AI returned {len(rows)} legacy histories with "
                                  f"{char.name or char.provider_id}; older ones may be missing.")
            for raw in rows:
                yield Conversation(
                    provider_id=raw["external_id"],
                    character_id=char.provider_id,
                    started_at=utc(raw.get("created")),
                    last_message_at=utc(raw.get("last_interaction")),
                )

    async def _read(self, history_id: str) -> list[dict[str, Any]]:
        """Every message the history lists (alternatives and deleted ones too), by id."""
        found: dict[str, dict[str, Any]] = {}
        asked: set[int] = set()
        params = {"history_external_id": history_id}
        for _ in range(MAX_PAGES):
            try:
                data = await self.http.read("GET", MESSAGES, params=params)
            except PermanentError as exc:
                if _gone(exc):
                    raise NotFound(f"Character.AI does not return the legacy history "
                                   f"{history_id} (HTTP {exc.status})",
                                   status=exc.status) from exc
                raise
            body = as_object(data, "a message page")
            rows = as_objects(body.get("messages"), "a message page")
            for row in rows:
                row["id"] = message_number(row)
                found[ident(row.get("uuid"), "message")] = row
            following = body.get("next_page")
            if (not rows or body.get("has_more") is not True or isinstance(following, bool)
                    or not isinstance(following, int) or following in asked):
                return sorted(found.values(), key=lambda row: int(row["id"]))
            asked.add(following)
            params = {"history_external_id": history_id, "page_num": str(following)}
        raise ProtocolError(f"Character.AI kept paging the legacy history {history_id} "
                            f"past {MAX_PAGES} pages")

    async def messages(self, conversation: Conversation) -> AsyncIterator[Message]:
        rows = await self._read(conversation.provider_id)
        kept = [r for r in rows if not r.get("is_alternative") and not r.get("deleted")]
        for position, row in enumerate(kept):
            yield message(conversation.provider_id, position, row)

    async def _absent(self, history_id: str, char_id: str) -> bool:
        """Whether the history lists confirm the history is gone (they must answer)."""
        if self._retired:
            return False
        try:
            char_ids = [char_id] if char_id else [r["external_id"] for r in await self._recent()]
            for cid in char_ids:
                rows = await self._histories(cid)
                if len(rows) >= HISTORIES_NUMBER or any(r["external_id"] == history_id
                                                        for r in rows):
                    return False
        except PermanentError:
            return False  # a list that answers 404/410 proves nothing about absence
        return True

    async def _read_back(self, history_id: str, char_id: str) -> list[dict[str, Any]] | None:
        """The history's messages, or None when it is confirmed gone."""
        try:
            return await self._read(history_id)
        except NotFound:
            if await self._absent(history_id, char_id):
                return None
            raise

    # -- erasing -------------------------------------------------------------------------

    async def erase(self, targets: Sequence[Target]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        groups: dict[str, list[int]] = {}
        for index, target in enumerate(targets):
            history_id = (target.provider_id if target.kind == "conversation"
                          else target.conversation_id)
            if not history_id:
                outcomes[index] = Outcome(target, "failed", "No legacy history is known for "
                                                            "this message; sync again.")
                continue
            groups.setdefault(history_id, []).append(index)
        try:
            for history_id, indexes in groups.items():
                await self._erase_history(history_id, [(i, targets[i]) for i in indexes],
                                          outcomes)
        except ProviderError as exc:
            # Auth, rate limit, or a request that never left: the job pauses or retries
            # later and keeps what was already settled.
            exc.partial = [outcomes[i] for i in sorted(outcomes)]
            raise
        return [outcomes[i] for i in range(len(targets))]

    async def _erase_history(self, history_id: str, items: list[tuple[int, Target]],
                             outcomes: dict[int, Outcome]) -> None:
        char_id = next((t.character_id for _, t in items if t.character_id), "")
        try:
            rows = await self._read_back(history_id, char_id)
        except PermanentError as exc:
            for index, target in items:
                outcomes[index] = Outcome(target, "failed", exc.message)
            return
        live = [str(r["uuid"]) for r in rows or [] if not r.get("deleted")]
        flagged = {str(r["uuid"]) for r in rows or [] if r.get("deleted")}
        plan: dict[int, list[str]] = {}
        for index, target in items:
            if rows is None:
                outcomes[index] = Outcome(target, "already_gone",
                                          "Character.AI no longer has this legacy history.")
            elif target.kind == "conversation":
                if live:
                    plan[index] = live
                else:
                    outcomes[index] = Outcome(target, "already_gone",
                                              "The legacy history holds no messages.")
            elif target.provider_id in live:
                plan[index] = [target.provider_id]
            else:
                detail = ("Character.AI already lists this message as deleted."
                          if target.provider_id in flagged
                          else "Character.AI no longer lists this message.")
                outcomes[index] = Outcome(target, "already_gone", detail)
        wanted = {u for uuids in plan.values() for u in uuids}
        results, response, stopped = await send_deletes(
            self.http, DELETE, history_id, [u for u in live if u in wanted], DELETE_BATCH)
        targets = dict(items)
        for index, uuids in plan.items():
            if all(u in results for u in uuids):
                outcomes[index] = settle(targets[index], uuids, results, response)
        if stopped is not None:
            raise stopped

    async def verify(self, targets: Sequence[Target]) -> list[Presence]:
        read: dict[str, list[dict[str, Any]] | None] = {}
        result: list[Presence] = []
        for target in targets:
            history_id = (target.provider_id if target.kind == "conversation"
                          else target.conversation_id)
            if not history_id:
                # Nothing locates it, so nothing proves it gone; erase() refuses it anyway.
                result.append(Presence(target, "present"))
                continue
            if history_id not in read:
                read[history_id] = await self._read_back(history_id, target.character_id)
            rows = read[history_id] or []
            if target.kind == "conversation":
                chosen = rows
            else:
                chosen = [r for r in rows if str(r["uuid"]) == target.provider_id]
            if any(not r.get("deleted") for r in chosen):
                result.append(Presence(target, "present"))
            elif chosen:
                result.append(Presence(target, "soft_deleted"))
            else:
                result.append(Presence(target, "gone"))
        return result
