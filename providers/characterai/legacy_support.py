"""Helpers of the legacy Character.AI provider: reading its JSON and sending deletes.

Kept apart from ``legacy`` only to keep each module short; the choices they
implement are written down in that module's docstring.
"""

from __future__ import annotations

from typing import Any

from ..base import batched
from ..errors import (
    AuthError,
    NotFound,
    PermanentError,
    ProtocolError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from ..http import HttpClient
from ..records import Message, Outcome, OutcomeStatus, Target

# uuid -> (status, detail) of the delete that carried it.
Results = dict[str, tuple[OutcomeStatus, str]]


def ident(value: object, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"Character.AI sent a {what} without a usable id")


def as_object(data: Any, what: str) -> dict[str, Any]:
    """An object; ``None`` or an empty body reads as an empty one."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProtocolError(f"Character.AI sent {what} that is not an object")
    return data


def as_objects(data: Any, what: str) -> list[dict[str, Any]]:
    """A list of objects; a missing key or ``null`` reads as an empty list."""
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ProtocolError(f"Character.AI sent {what} that is not a list of objects")
    return data


def message_number(row: dict[str, Any]) -> int:
    """A legacy message's ``id``: a large integer that grows with time."""
    value = row.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProtocolError("Character.AI sent a legacy message without a numeric id")


def message(history_id: str, position: int, row: dict[str, Any]) -> Message:
    """A legacy message row as a Message; ``src__is_human`` missing is read from the sender
    (characters' senders are ``internal_id:…`` users)."""
    human = row.get("src__is_human")
    if not isinstance(human, bool):
        sender = str(row.get("src__user__username") or row.get("src") or "")
        human = not sender.startswith("internal_id:")
    src_char = row.get("src_char")
    participant = src_char.get("participant") if isinstance(src_char, dict) else None
    fallback = participant.get("name") if isinstance(participant, dict) else None
    author = row.get("src__name") or ("You" if human else fallback) or "Character"
    text = row.get("text")
    return Message(
        provider_id=str(row["uuid"]),
        conversation_id=history_id,
        position=position,
        author=str(author),
        is_human=human,
        text="" if text is None else str(text),
    )


async def send_deletes(http: HttpClient, path: str, history_id: str, uuids: list[str],
                       size: int) -> tuple[Results, dict[str, Any], ProviderError | None]:
    """Delete ``uuids`` of one history, ``size`` per request.

    Returns each sent uuid's result, the last acknowledgement, and the error that stopped
    the sending (auth, rate limit, a request that never left), if one did. A request that
    may have arrived is never sent again: its uuids are ``unknown``.
    """
    results: Results = {}
    response: dict[str, Any] = {}
    refused: PermanentError | None = None
    for batch in batched(uuids, size):
        if refused is not None:
            # The same refusal would come back for every batch; do not hammer it.
            results.update({u: ("failed", refused.message) for u in batch})
            continue
        try:
            data = await http.write("POST", path, json_body={
                "history_id": history_id, "uuids_to_delete": list(batch)})
        except TemporaryError as exc:
            if not exc.sent:
                return results, response, exc
            results.update({u: ("unknown", exc.message) for u in batch})
        except ProtocolError as exc:
            results.update({u: ("unknown", exc.message) for u in batch})
        except NotFound as exc:
            # 404: the history went away since the read-back; 410: the API is retired.
            status: OutcomeStatus = "already_gone" if exc.status == 404 else "failed"
            results.update({u: (status, exc.message) for u in batch})
        except PermanentError as exc:
            refused = exc
            results.update({u: ("failed", exc.message) for u in batch})
        except (AuthError, RateLimited) as exc:
            return results, response, exc
        else:
            ack = data.get("status") if isinstance(data, dict) else None
            response = {"status": ack} if isinstance(ack, str) else {}
            results.update({u: ("erased", "") for u in batch})
    return results, response, None


def settle(target: Target, uuids: list[str], results: Results,
           response: dict[str, Any]) -> Outcome:
    """One target's outcome from the results of the uuids it stands for."""
    states = [results[u] for u in uuids]
    kinds = {status for status, _ in states}
    done = sum(1 for status, _ in states if status == "erased")
    if kinds <= {"erased", "already_gone"} and done:
        detail = ""
        if target.kind == "conversation":
            noun = "message" if len(uuids) == 1 else "messages"
            detail = f"all {len(uuids)} {noun} deleted; the empty history remains"
        return Outcome(target, "erased", detail, {**response, "deleted": done})
    # An uncertain delete decides first (the read-back settles it), then a refusal.
    for wanted in ("unknown", "failed", "already_gone"):
        for status, detail in states:
            if status == wanted:
                if status == "failed" and done:
                    detail = f"{done} of {len(uuids)} messages deleted, then: {detail}"
                return Outcome(target, status, detail)
    raise AssertionError("a target without results cannot be settled")
