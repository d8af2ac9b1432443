"""Recording what a provider said about erasure items, and what a read-back found.

- an item is `erased` only after the provider acknowledged it, `verified` only after a
  read-back no longer returns it, `soft_deleted` when the provider only marked it;
- an uncertain outcome (timeout or reset after sending, unparseable answer) is read back
  before anything could be sent again (``resolve_unknown``), so no item gets a second
  successful delete;
- an outcome is written only over the state it was read in, so a late answer never
  overwrites what another worker or a cancel settled meanwhile.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from providers.records import Outcome, Target

from ..lib import locks
from ..lib.aio import ProviderSession
from ..mirror.purge import purge
from ..models import ErasureItem, ErasureJob

log = logging.getLogger(__name__)

State = ErasureItem.State
MAX_ATTEMPTS = 3
Key = tuple[str, str]


def target_of(item: ErasureItem) -> Target:
    return Target(kind=item.kind, provider_id=item.provider_id,  # type: ignore[arg-type]
                  conversation_id=item.conversation_provider_id,
                  character_id=item.character_provider_id)


def key_of(target: Target) -> Key:
    return (target.kind, target.provider_id)


def save(items: list[ErasureItem], expected: tuple[str, ...]) -> None:
    """Write the items' outcome fields, but only over the state the caller read them in: an
    item another worker or a cancel has moved on meanwhile keeps what they wrote. Items
    sharing fields (a batch mostly does) go in one UPDATE, not one CASE per row."""
    now = timezone.now()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for item in items:
        key = (item.state, item.detail, json.dumps(item.response, sort_keys=True),
               item.settled_at, item.next_attempt_at)
        groups.setdefault(key, []).append(item.pk)
    for (state, detail, response, settled_at, next_attempt_at), ids in groups.items():
        ErasureItem.objects.filter(pk__in=ids, state__in=expected).update(
            state=state, detail=detail, response=json.loads(response), settled_at=settled_at,
            next_attempt_at=next_attempt_at, updated_at=now)


_OUTCOME_STATE = {
    "erased": State.ERASED,
    "already_gone": State.ALREADY_GONE,
    "failed": State.FAILED,
    "unknown": State.UNKNOWN,
}


def record(batch: list[ErasureItem], outcomes: list[Outcome]) -> None:
    by_key: dict[Key, Outcome] = {key_of(o.target): o for o in outcomes}
    now = timezone.now()
    for item in batch:
        outcome = by_key.get((item.kind, item.provider_id))
        if outcome is None:
            item.state, item.detail = State.UNKNOWN, "The provider gave no outcome for it."
        else:
            item.state = _OUTCOME_STATE[outcome.status]
            item.detail = outcome.detail
            item.response = outcome.response
        item.settled_at = now if item.state in (State.FAILED, State.ALREADY_GONE) else None
    with transaction.atomic():
        save(batch, expected=(State.IN_FLIGHT,))
        settle_mirror(batch)


def settle_mirror(items: list[ErasureItem]) -> None:
    """Lethe drops its copy of what the provider erased (invariant 9), in the caller's
    transaction, the one that records the outcome."""
    done = [i for i in items if i.state in ErasureItem.PURGED]
    if not done:
        return
    # After any sync of the connection under way commits (see lib/locks.py).
    locks.hold(locks.MIRROR, ErasureJob.objects.filter(pk=done[0].job_id).values_list(
        "connection_id", flat=True))
    purge(conversations=[i.conversation_id for i in done
                         if i.kind == ErasureItem.Kind.CONVERSATION and i.conversation_id],
          messages=[i.message_id for i in done
                    if i.kind == ErasureItem.Kind.MESSAGE and i.message_id])


def read_back(session: ProviderSession, targets: list[Target]) -> dict[Key, str]:
    presence = session.call(session.provider.verify(targets))
    return {key_of(p.target): p.state for p in presence}


def resolve_unknown(session: ProviderSession, items: list[ErasureItem],
                     cancelled: bool = False) -> None:
    found = read_back(session, [target_of(i) for i in items])
    now = timezone.now()
    for item in items:
        state = found.get((item.kind, item.provider_id))
        if state == "gone":
            item.state = State.ERASED
            item.detail = "Confirmed gone on read-back after an uncertain answer; not sent again."
        elif state == "soft_deleted":
            item.state, item.settled_at = State.SOFT_DELETED, now
            item.detail = "Only marked deleted at the provider (soft delete); not erased."
        elif cancelled:
            item.state, item.settled_at = State.SKIPPED, now
            item.detail = "Still present after an uncertain answer; the job was cancelled."
        elif item.attempts < MAX_ATTEMPTS:
            item.state = State.PENDING
            item.detail = "Still present after an uncertain answer; will be sent again."
        else:
            item.state, item.settled_at = State.FAILED, now
            item.detail = f"Still present after {item.attempts} tries."
    with transaction.atomic():
        save(items, expected=(State.UNKNOWN,))
        settle_mirror(items)


_VERIFIED = {
    "gone": (State.VERIFIED, None),
    "soft_deleted": (State.SOFT_DELETED,
                     "Acknowledged, but the provider only marked it deleted (soft delete)."),
}
_STILL_THERE = (State.STILL_THERE, "The provider acknowledged the delete but still returns it.")


def verify(session: ProviderSession, job: ErasureJob) -> None:
    """Read back every acknowledged, unverified item of the job and record what the provider
    says now; ProviderError when the read-back fails (the items stay unverified).

    Runs once at the end over what may be the whole job, so it reads only the fields a
    target needs and writes one UPDATE per result, never one per item."""
    rows = list(job.items.filter(state=State.ERASED, settled_at__isnull=True).order_by(
        "id").values_list("id", "kind", "provider_id", "conversation_provider_id",
                          "character_provider_id"))
    if not rows:
        return
    targets = [Target(kind=kind, provider_id=pid, conversation_id=conv,  # type: ignore[arg-type]
                      character_id=char) for _, kind, pid, conv, char in rows]
    found = read_back(session, targets)
    results: dict[tuple[str, str | None], list[int]] = {}
    for (pk, *_), target in zip(rows, targets, strict=True):
        results.setdefault(_VERIFIED.get(found.get(key_of(target), ""), _STILL_THERE),
                           []).append(pk)
    now = timezone.now()
    for (state, detail), ids in results.items():
        fields: dict[str, Any] = {"state": state, "settled_at": now, "updated_at": now}
        if detail is not None:
            fields["detail"] = detail
        # Only over `erased`: an item someone else settled meanwhile keeps what they wrote.
        ErasureItem.objects.filter(pk__in=ids, state=State.ERASED).update(**fields)
