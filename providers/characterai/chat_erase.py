"""Erase and verify for Character.AI chat v2, kept apart from the client in ``chat``.

They reach Character.AI only through ``ChatSite``, the four calls they need, so that this
module does not import the client and imports run one way (``chat`` uses this module).

Per chat: read back first (the chat for whole-chat targets, then its turn ids), so ids
already gone are "already_gone" and never sent; remove the wanted turns in batches of
``MAX_REMOVE``; for a whole chat, archive it once every removal was acknowledged. Message
outcomes are settled batch by batch, so an AuthError or RateLimited in the middle carries
every acknowledged removal in ``partial``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..base import batched
from ..errors import NotFound, PermanentError, ProtocolError, ProviderError, TemporaryError
from ..records import Outcome, OutcomeStatus, Presence, Target

ARCHIVED = "STATE_ARCHIVED"
MAX_REMOVE = 50
NO_CHAT = "Character.AI does not know this chat (any more)."
TURN_GONE = "Character.AI no longer lists this message."


class ChatSite(Protocol):
    """What erasing and verifying need from the chat v2 client."""

    async def chat(self, chat_id: str) -> dict[str, Any] | None:
        """The chat object (``{}`` if the answer has none), or None when it is unknown."""

    async def turn_ids(self, chat_id: str) -> list[str] | None:
        """The chat's turn ids oldest first, or None when the chat is unknown."""

    async def remove_turns(self, chat_id: str, ids: Sequence[str]) -> Any: ...

    async def archive(self, chat_id: str) -> Any: ...


def _all(total: int) -> str:
    """"all 12 messages", or "its one message"."""
    return "its one message" if total == 1 else f"all {total} messages"


def _chat_id(target: Target) -> str:
    return target.provider_id if target.kind == "conversation" else target.conversation_id


async def erase_targets(provider: ChatSite, targets: Sequence[Target]
                        ) -> list[Outcome]:
    outcomes: dict[int, Outcome] = {}
    chats: dict[str, list[int]] = {}
    for index, target in enumerate(targets):
        if target.kind not in ("message", "conversation") or not _chat_id(target):
            outcomes[index] = Outcome(target, "failed", "A Character.AI message can only be "
                                      "erased with the id of its chat.")
            continue
        chats.setdefault(_chat_id(target), []).append(index)
    try:
        for chat_id, indexes in chats.items():
            await _erase_chat(provider, chat_id, [(i, targets[i]) for i in indexes], outcomes)
    except ProviderError as exc:
        # Auth, rate limit, or an outage before a request was sent: the job pauses or
        # retries later and keeps what was already settled.
        exc.partial = [outcomes[i] for i in sorted(outcomes)]
        raise
    return [outcomes[i] for i in range(len(targets))]


async def _erase_chat(provider: ChatSite, chat_id: str,
                      items: list[tuple[int, Target]], outcomes: dict[int, Outcome]) -> None:
    def settle_all(status: OutcomeStatus, detail: str) -> None:
        for index, target in items:
            outcomes[index] = Outcome(target, status, detail)

    whole = [(i, t) for i, t in items if t.kind == "conversation"]
    single = [(i, t) for i, t in items if t.kind == "message"]
    try:
        # The chat tells whether it is archived; its turns whether it exists at all (an
        # unknown chat is NotFound on both, but an archived one might be only on the first).
        chat = await provider.chat(chat_id) if whole else {}
        listed = await provider.turn_ids(chat_id)
    except ProtocolError as exc:
        # Nothing was sent yet: a garbled read is worth another try, not a failed item.
        raise TemporaryError(f"{exc.message} (before anything was sent)", sent=False) from exc
    except PermanentError as exc:
        settle_all("failed", exc.message)
        return
    if listed is None:
        settle_all("already_gone", NO_CHAT)
        return
    present = set(listed)
    for index, target in single:
        if target.provider_id not in present:
            outcomes[index] = Outcome(target, "already_gone", TURN_GONE)
    wanted = listed if whole else list(dict.fromkeys(
        t.provider_id for _, t in single if t.provider_id in present))
    results: dict[str, tuple[OutcomeStatus, str]] = {}
    refused = ""
    status: OutcomeStatus
    for batch in batched(wanted, MAX_REMOVE):
        if refused:
            # A refusal of the endpoint itself repeats for every batch; do not hammer it.
            status, detail = "failed", refused
        else:
            status, detail, every = await _remove(provider, chat_id, batch)
            refused = detail if every else ""
        for ident in batch:
            results[ident] = (status, detail)
        response = {"removed_in_request": len(batch)} if status == "erased" else {}
        for index, target in single:
            if target.provider_id in batch:
                outcomes[index] = Outcome(target, status, detail, response)
    for index, target in whole:
        outcomes[index] = await _finish_chat(provider, target, chat, wanted, results)


async def _remove(provider: ChatSite, chat_id: str, batch: Sequence[str]
                  ) -> tuple[OutcomeStatus, str, bool]:
    """One remove call: (status, detail, whether every later call would be refused too)."""
    try:
        await provider.remove_turns(chat_id, batch)
    except TemporaryError as exc:
        if not exc.sent:
            raise
        return "unknown", exc.message, False
    except ProtocolError as exc:
        # A 2xx whose body did not parse: the removal may well have happened.
        return "unknown", exc.message, False
    except NotFound:
        return "already_gone", NO_CHAT, False
    except PermanentError as exc:
        return "failed", exc.message, exc.status == 403
    return "erased", "", False


async def _finish_chat(provider: ChatSite, target: Target,
                       chat: dict[str, Any] | None,
                       wanted: list[str], results: dict[str, tuple[OutcomeStatus, str]]
                       ) -> Outcome:
    total = len(wanted)
    done = sum(1 for i in wanted if results[i][0] in ("erased", "already_gone"))
    counts = {"turns": total, "turns_removed": done}
    unknown = next((results[i][1] for i in wanted if results[i][0] == "unknown"), None)
    if unknown is not None:
        return Outcome(target, "unknown", f"{done} of {total} messages removed; the answer to "
                       f"removing the others was lost ({unknown}); the chat is read back "
                       "before anything is sent again.", counts)
    failed = next((results[i][1] for i in wanted if results[i][0] == "failed"), None)
    if failed is not None:
        return Outcome(target, "failed", f"{done} of {total} messages removed; Character.AI "
                       f"refused the others ({failed}); the chat was not archived.", counts)
    if chat is None and total == 0:
        return Outcome(target, "already_gone", NO_CHAT)
    if chat is not None and chat.get("state") == ARCHIVED:
        if total == 0:
            return Outcome(target, "already_gone", "The chat is already empty and archived.")
        return Outcome(target, "erased", f"{_all(total)} removed; the chat was already "
                       "archived", {**counts, "archived": True})
    try:
        await provider.archive(target.provider_id)
    except TemporaryError as exc:
        if not exc.sent:
            raise
        return Outcome(target, "unknown", f"{_all(total)} removed, but the answer to "
                       f"archiving the chat was lost ({exc.message}).", counts)
    except ProtocolError as exc:
        return Outcome(target, "unknown", f"{_all(total)} removed, but the answer to "
                       f"archiving the chat did not parse ({exc.message}).", counts)
    except NotFound:
        return Outcome(target, "erased", f"{_all(total)} removed; the chat no longer "
                       "exists", counts)
    except PermanentError as exc:
        if "already archived" not in exc.message.lower():
            return Outcome(target, "failed", f"{_all(total)} {'was' if total == 1 else 'were'}"
                           " removed, but the chat "
                           f"could not be archived ({exc.message}); it is not fully erased.",
                           counts)
    return Outcome(target, "erased", f"{_all(total)} removed and the chat archived",
                   {**counts, "archived": True})


async def verify_targets(provider: ChatSite, targets: Sequence[Target]
                         ) -> list[Presence]:
    turns: dict[str, set[str] | None] = {}
    chats: dict[str, dict[str, Any] | None] = {}
    result: list[Presence] = []
    for target in targets:
        chat_id = _chat_id(target)
        if target.kind == "conversation" and chat_id not in chats:
            chats[chat_id] = await provider.chat(chat_id)
        if chat_id not in turns:
            listed = await provider.turn_ids(chat_id)
            turns[chat_id] = None if listed is None else set(listed)
        found = turns[chat_id]
        if target.kind == "message":
            present = found is not None and target.provider_id in found
        else:
            chat = chats[chat_id]
            # An archived, empty chat is all Character.AI lets us reach: it counts as gone.
            present = found is not None and (bool(found) or (
                chat is not None and chat.get("state") != ARCHIVED))
        result.append(Presence(target, "present" if present else "gone"))
    return result
